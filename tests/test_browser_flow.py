"""A person's whole journey in a real browser: Debian's Chromium driven by Playwright against
the live test server. The confirmation email is queued on Redis by the live server and sent
by a real Celery worker to the SMTP sink; the test reads the link from that email.

Screenshots of every page land in tests/artifacts/screenshots/ (look at them after a change
to the templates). The same flow runs on a desktop window with JavaScript on and on a
390 px phone screen with JavaScript off and a dark colour scheme: the pages use no script.
"""

from pathlib import Path

import pytest

from subscriptions.models import ConsentEvent, Subscriber

from .helpers import links_in, make_subscriber, path_of, personal_links, preferences_path

pytestmark = [pytest.mark.browser, pytest.mark.worker]

SCREENSHOTS = Path(__file__).resolve().parent / "artifacts" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
# No GPU, no sandbox (containers), and nothing that phones home: only loopback is reachable.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]

# The desktop browser lives in Paris: the sign-up form fills that in where JavaScript runs.
DESKTOP = {"name": "desktop", "viewport": {"width": 1280, "height": 900}, "javascript": True, "timezone_id": "Europe/Paris"}
PHONE = {
    "name": "mobile-nojs-dark",
    "viewport": {"width": 390, "height": 844},
    "javascript": False,
    "is_mobile": True,
    "color_scheme": "dark",
}

OVERFLOWING_ELEMENTS = """() => {
  const width = document.documentElement.clientWidth;
  const wide = [...document.querySelectorAll('body *:not(option)')]
    .filter(e => e.getBoundingClientRect().right > width + 1 && !e.closest('.honeypot'))
    .map(e => e.tagName.toLowerCase() + (e.className ? '.' + e.className : '') + (e.id ? '#' + e.id : ''));
  if (document.documentElement.scrollWidth > width) wide.push('page scrolls sideways');
  return wide;
}"""


# WCAG 2.1 AA: text has a contrast ratio of 4.5:1 or more against the background it is drawn
# on (the nearest ancestor's, where its own is clear). Called with a selector: the elements to
# check (BUTTONS: every button and link styled as one; TEXT: every element with text of its own).
BUTTONS = "button, .button, input[type=submit]"
TEXT = "*"
CONTRAST_FAILURES = """(selector) => {
  const rgb = s => (s.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => {
    const c = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * c(r) + 0.7152 * c(g) + 0.0722 * c(b);
  };
  const background = e => {
    for (let n = e; n; n = n.parentElement) {
      const c = rgb(getComputedStyle(n).backgroundColor);
      if (c.length === 3 || (c.length === 4 && c[3] > 0.5)) return c.slice(0, 3);
    }
    return matchMedia('(prefers-color-scheme: dark)').matches ? [0, 0, 0] : [255, 255, 255];
  };
  const failures = [];
  const ownText = e => [...e.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
  for (const e of document.querySelectorAll(selector)) {
    if (!e.offsetParent && getComputedStyle(e).position !== 'fixed') continue;  // not shown
    if (selector === '*' && !ownText(e)) continue;
    const fg = lum(rgb(getComputedStyle(e).color).slice(0, 3)), bg = lum(background(e));
    const ratio = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
    if (ratio < 4.5) failures.push(`${e.textContent.trim().slice(0, 60)}: ${ratio.toFixed(2)}`);
  }
  return failures;
}"""


@pytest.fixture(scope="module")
def chromium():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make system-deps` (installs Debian's chromium).")
    from playwright.sync_api import sync_playwright

    with pytest.MonkeyPatch.context() as mp, sync_playwright() as playwright:
        # Playwright's sync API keeps an event loop running in this thread for as long as the
        # browser lives; Django then refuses ORM calls from it (test code and the database
        # fixtures alike) unless told that this plain synchronous code is safe.
        mp.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class Visit:
    """One browser context (one person) with screenshot and layout checks after each page."""

    def __init__(self, browser, base_url: str, device: dict):
        self.device = device
        self.context = browser.new_context(
            viewport=device["viewport"],
            is_mobile=device.get("is_mobile", False),
            java_script_enabled=device["javascript"],
            color_scheme=device.get("color_scheme", "light"),
            timezone_id=device.get("timezone_id"),
            base_url=base_url,
        )
        self.context.set_default_timeout(15_000)
        self.page = self.context.new_page()
        self.shots: list[Path] = []

    def snap(self, step: str) -> None:
        page = self.page
        # Pages work without JavaScript (the phone runs have it off); what script there is,
        # is our own static file (the CSP allows nothing else), never inline.
        for script in page.locator("script").all():
            src = script.get_attribute("src") or ""
            assert src.startswith("/static/") and not script.inner_html().strip(), f"{step}: page ships an inline or foreign <script>"
        text = page.inner_text("body")
        assert not any(tag in text for tag in ("{#", "{%", "{{")), f"{step}: template syntax shows on the page"
        # Nothing may be wider than the screen (no sideways scrolling on phones). Playwright's
        # evaluate still runs when the page's own JavaScript is disabled.
        overflow = page.evaluate(OVERFLOWING_ELEMENTS)
        assert not overflow, f"{step}: wider than the {self.device['viewport']['width']}px screen: {overflow}"
        low_contrast = page.evaluate(CONTRAST_FAILURES, BUTTONS)
        assert not low_contrast, f"{step}: buttons below WCAG AA contrast (4.5:1): {low_contrast}"
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{self.device['name']}-{len(self.shots) + 1:02d}-{step}.png"
        page.screenshot(path=str(path), full_page=True)
        self.shots.append(path)

    def close(self):
        self.context.close()


def kinds(subscriber) -> list[str]:
    return list(subscriber.consent_events.order_by("created_at", "id").values_list("kind", flat=True))


@pytest.mark.parametrize("device", [DESKTOP, PHONE], ids=lambda d: d["name"])
def test_signup_confirm_preferences_unsubscribe(
device, chromium, live_server, celery_worker, topics):
    email = f"browser-{device['name']}@example.org"
    visit = Visit(chromium, live_server.url, device)
    page = visit.page
    try:
        # 1. The sign-up form: no topic is pre-ticked.
        page.goto("/")
        assert page.title().startswith("Subscribe")
        assert page.locator("input[name=topics]:checked").count() == 0
        visit.snap("signup")

        # An invalid address gets a clear message and records nothing.
        page.get_by_label("Email").fill("not-an-address")
        page.get_by_label("Agents and tool use").check()
        page.get_by_role("button", name="Subscribe").click()
        assert page.get_by_text("That does not look like an email address").is_visible()
        assert not Subscriber.objects.exists()
        visit.snap("signup-invalid")

        page.get_by_label("Email").fill(email)
        page.get_by_label("Code generation").check()
        page.get_by_role("radio", name="Weekly").check()
        page.get_by_label("Day for the weekly digest").select_option(label="Thursday")
        page.get_by_role("button", name="Subscribe").click()
        page.get_by_role("heading", name="Check your inbox").wait_for()
        visit.snap("check-inbox")

        # 2. The worker stores the sign-up (the page answered first, the same for every
        # address) and sends the confirmation email over SMTP.
        received = celery_worker.smtp_sink.wait_for(1)
        assert len(received) == 1, celery_worker.output()[-3000:]
        assert received[0]["envelope_to"] == [email]
        text = received[0]["message"].get_body(preferencelist=("plain",)).get_content()
        [confirm_link] = links_in(text, "/confirm/")
        subscriber = Subscriber.objects.get(email=email)
        assert subscriber.status == Subscriber.Status.PENDING
        assert sorted(subscriber.topics.values_list("slug", flat=True)) == ["agents", "code"]
        assert kinds(subscriber) == [ConsentEvent.Kind.SIGNUP]
        signup_event = subscriber.consent_events.get()
        # The browser's own timezone (filled in by timezone.js where JavaScript runs; the form's default otherwise).
        zone = "Europe/Paris" if device["javascript"] else "UTC"
        assert signup_event.details == {"topics": ["agents", "code"], "frequency": "weekly", "timezone": zone, "weekday": 3}
        assert subscriber.timezone == signup_event.details["timezone"]
        assert signup_event.ip_address == "127.0.0.1"
        assert "Chrome" in signup_event.user_agent

        # 3. Opening the link only shows a button: a prefetching scanner confirms nothing.
        page.goto(path_of(confirm_link))
        page.get_by_role("heading", name="Confirm your subscription").wait_for()
        visit.snap("confirm")
        subscriber.refresh_from_db()
        assert subscriber.status == Subscriber.Status.PENDING
        page.get_by_role("button", name="Confirm").click()
        page.get_by_role("heading", name="You're in!").wait_for()
        visit.snap("confirmed")
        subscriber.refresh_from_db()
        assert subscriber.status == Subscriber.Status.ACTIVE
        assert subscriber.confirmed_at is not None
        assert (subscriber.frequency, subscriber.weekday) == (Subscriber.Frequency.WEEKLY, Subscriber.Weekday.THURSDAY)
        assert kinds(subscriber) == [ConsentEvent.Kind.SIGNUP, ConsentEvent.Kind.CONFIRM]

        # 4. The preferences page from the link on the confirmation page.
        page.get_by_role("link", name="Choose topics, time and frequency").click()
        page.get_by_role("heading", name="Your preferences").wait_for()
        assert "/preferences/" in page.url
        assert page.get_by_label("Agents and tool use").is_checked()
        assert page.get_by_label("Code generation").is_checked()
        visit.snap("preferences")
        page.get_by_label("Agents and tool use").uncheck()
        page.get_by_label("Robotics and embodied AI").check()
        page.get_by_label("Send at (your local time)").select_option("18")
        page.get_by_role("button", name="Save preferences").click()
        page.get_by_text("Your preferences are saved.").wait_for()
        visit.snap("preferences-saved")
        subscriber.refresh_from_db()
        assert sorted(subscriber.topics.values_list("slug", flat=True)) == ["code", "robotics"]
        assert subscriber.send_hour == 18
        assert kinds(subscriber)[-1] == ConsentEvent.Kind.PREFERENCES
        change = subscriber.consent_events.filter(kind=ConsentEvent.Kind.PREFERENCES).get()
        assert change.details["changes"] == {
            "topics": {"from": ["agents", "code"], "to": ["code", "robotics"]},
            "send_hour": {"from": 7, "to": 18},
        }

        # 5. A break: pause, then resume.
        page.get_by_role("button", name="Pause my digests").click()
        page.get_by_role("button", name="Resume my digests").wait_for()
        visit.snap("preferences-paused")
        subscriber.refresh_from_db()
        assert subscriber.paused and subscriber.status == Subscriber.Status.ACTIVE
        page.get_by_role("button", name="Resume my digests").click()
        page.get_by_role("button", name="Pause my digests").wait_for()
        subscriber.refresh_from_db()
        assert not subscriber.paused
        assert kinds(subscriber)[-2:] == [ConsentEvent.Kind.PAUSE, ConsentEvent.Kind.RESUME]

        # 6. Unsubscribe: the link shows a button, the button unsubscribes.
        page.get_by_role("link", name="Unsubscribe").click()
        page.get_by_role("heading", name="Unsubscribe").wait_for()
        visit.snap("unsubscribe")
        subscriber.refresh_from_db()
        assert subscriber.status == Subscriber.Status.ACTIVE
        page.get_by_role("button", name="Unsubscribe").click()
        page.get_by_role("heading", name="You are unsubscribed").wait_for()
        visit.snap("unsubscribed")
        subscriber.refresh_from_db()
        assert subscriber.status == Subscriber.Status.UNSUBSCRIBED
        assert subscriber.unsubscribed_at is not None
        assert kinds(subscriber) == [
            ConsentEvent.Kind.SIGNUP,
            ConsentEvent.Kind.CONFIRM,
            ConsentEvent.Kind.PREFERENCES,
            ConsentEvent.Kind.PAUSE,
            ConsentEvent.Kind.RESUME,
            ConsentEvent.Kind.UNSUBSCRIBE,
        ]
        assert subscriber.consent_events.filter(kind=ConsentEvent.Kind.UNSUBSCRIBE).get().details["method"] == "page"

        # 7. The way back: the page holds no preferences link (whoever has an old unsubscribe
        # link would get it); the button mails one to the address itself.
        assert personal_links(page.content()) == []
        page.get_by_role("button", name="Email me a link to my preferences").click()
        page.get_by_role("heading", name="Check your inbox").wait_for()
        received = celery_worker.smtp_sink.wait_for(2)
        assert len(received) == 2 and received[1]["envelope_to"] == [email], celery_worker.output()[-3000:]
        text = received[1]["message"].get_body(preferencelist=("plain",)).get_content()
        [preferences_link] = links_in(text, "/preferences/")
        page.goto(path_of(preferences_link))
        page.get_by_role("button", name="Resubscribe").wait_for()
        visit.snap("preferences-unsubscribed")

        # 8. A mangled link gets a clear page, not an error.
        page.goto(page.url.rstrip("/")[:-4] + "xxxx/")
        page.get_by_role("heading", name="This link is not valid").wait_for()
        visit.snap("invalid-link")
    finally:
        visit.close()

    assert all(p.stat().st_size > 5_000 for p in visit.shots)
    # Only the confirmation and the asked-for preferences link were mailed.
    assert len(celery_worker.smtp_sink.messages) == 2


# Where the weekday field hides, JavaScript is off: CSS :has() alone shows it for weekly digests.
DESKTOP_NO_JS = {**DESKTOP, "name": "desktop-nojs", "javascript": False, "timezone_id": None}


@pytest.mark.parametrize("device", [DESKTOP_NO_JS, PHONE], ids=lambda d: d["name"])
def test_weekday_field_shows_only_for_weekly_digests(device, chromium, live_server, transactional_db, topics):
    """On the sign-up and preferences pages, without script: hidden while "Daily" is ticked,
    shown once "Weekly" is, and the chosen day is what the sign-up records."""
    reader = make_subscriber("weekly-reader@example.org", topics=[topics["agents"]], frequency="weekly", weekday=4)
    visit = Visit(chromium, live_server.url, {**device, "name": f"weekday-{device['name']}"})
    page = visit.page
    weekday = page.get_by_label("Day for the weekly digest")
    try:
        page.goto("/")
        assert page.get_by_role("radio", name="Daily").is_checked() and weekday.count() == 1
        assert not weekday.is_visible()
        visit.snap("signup-daily")
        page.get_by_role("radio", name="Weekly").check()
        assert weekday.is_visible()
        visit.snap("signup-weekly")
        page.get_by_role("radio", name="Daily").check()
        assert not weekday.is_visible()

        page.get_by_role("radio", name="Weekly").check()
        weekday.select_option(label="Wednesday")
        page.get_by_label("Email").fill("weekday@example.org")
        page.get_by_label("Robotics and embodied AI").check()
        page.get_by_role("button", name="Subscribe").click()
        page.get_by_role("heading", name="Check your inbox").wait_for()
        signup = Subscriber.objects.get(email="weekday@example.org").consent_events.get()
        assert (signup.details["frequency"], signup.details["weekday"]) == ("weekly", Subscriber.Weekday.WEDNESDAY)

        # Preferences of a weekly reader: the day shows, and hides once "Daily" is ticked.
        page.goto(preferences_path(reader))
        assert page.get_by_role("radio", name="Weekly").is_checked() and weekday.is_visible()
        assert weekday.input_value() == "4"
        visit.snap("preferences-weekly")
        page.get_by_role("radio", name="Daily").check()
        assert not weekday.is_visible()
        visit.snap("preferences-daily")
        page.get_by_role("button", name="Save preferences").click()
        page.get_by_text("Your preferences are saved.").wait_for()
        assert not weekday.is_visible()  # saved as daily: still hidden
        reader.refresh_from_db()
        assert (reader.frequency, reader.weekday) == ("daily", 4)  # the day is kept for a later weekly
    finally:
        visit.close()
