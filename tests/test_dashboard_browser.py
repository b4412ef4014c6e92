"""The operator's dashboard in a real browser (Debian's Chromium through Playwright, against
the live test server): a staff user logs in and the admin opens on charts of four months of
seeded data (tests/support/dashboard_data.py). The complaint-rate chart must cross the 0.1% line on
the day the seed's own numbers say, every figure must lead to its filtered list, and the page
must fit a 1280 px screen; the reader feedback section must fit a phone too. Screenshots:
tests/artifacts/screenshots/dashboard-*.png."""

import re

import pytest
from django.conf import settings

from newsletter.models import Delivery

from .support.dashboard_data import seed
from .test_browser_flow import DESKTOP, OVERFLOWING_ELEMENTS, PHONE, SCREENSHOTS, chromium  # noqa: F401  (fixture)

pytestmark = pytest.mark.browser

PASSWORD = "correct-horse-battery-staple"


def log_in(browser, base_url, django_user_model, color_scheme="light", viewport=DESKTOP["viewport"]):
    django_user_model.objects.create_superuser("operator", "operator@example.org", PASSWORD)
    context = browser.new_context(viewport=viewport, base_url=base_url, color_scheme=color_scheme)
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.goto("/admin/login/?next=/admin/")
    page.get_by_label("Username").fill("operator")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.locator("#panel-complaints").wait_for()
    return context, page


def dots(page, panel: str, series: str) -> list[dict]:
    return page.locator(f"#panel-{panel} circle[data-series='{series}']").evaluate_all(
        "els => els.map(e => ({date: e.dataset.date, value: +e.dataset.value, cy: +e.getAttribute('cy')}))"
    )


def line_y(page, panel: str, value: str) -> float:
    return float(page.locator(f"#panel-{panel} line[data-threshold='{value}']").get_attribute("y1"))


def test_the_dashboard_shows_the_seeded_months(chromium, live_server, transactional_db, topics, django_user_model):  # noqa: F811
    seeded = seed(subscribers=3000)
    up, down = seeded.crossings(0.001)
    assert seeded.spike_first_day < up <= seeded.spike_last_day < down  # the seed has the shape it promises
    context, page = log_in(chromium, live_server.url, django_user_model)
    try:
        # Branded, and the first thing on the page is the dashboard.
        assert page.locator("#site-name").inner_text() == settings.SITE_NAME
        panels = page.locator(".ops-panel").evaluate_all("els => els.map(e => e.id)")
        assert panels == ["panel-subscribers", "panel-signups", "panel-digests", "panel-complaints", "panel-bounces",
                          "panel-scrapes", "panel-unsubscribes", "panel-topics",
                          "panel-votes", "panel-topic-leaves", "panel-personalisation", "panel-most-voted"]
        assert not page.evaluate(OVERFLOWING_ELEMENTS), "wider than 1280 px"
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "dashboard-light.png"), full_page=True)
        page.locator("#reader-feedback").screenshot(path=str(SCREENSHOTS / "dashboard-feedback-light.png"))

        # The seed's votes are drawn: the day bars add up to the votes standing now, and the most
        # voted paper leads to its admin page.
        from newsletter.models import Vote

        drawn = page.locator("#panel-votes rect").evaluate_all("els => els.reduce((t, e) => t + +e.dataset.value, 0)")
        window_start = seeded.dates[-90]
        assert drawn == Vote.objects.filter(updated_at__date__gte=window_start).count() > 100
        top = page.locator("#panel-most-voted tbody tr").first.get_by_role("link").first
        title = top.inner_text()
        top.click()
        page.wait_for_url(re.compile(r"/admin/newsletter/paper/\d+/change/"))
        assert page.locator(".field-title .readonly").inner_text() == title
        page.goto("/admin/")

        # The complaint chart draws both Gmail lines, and its 7-day line is above the 0.1% line
        # exactly on the days the seed's sends and complaints put it there.
        y_01, y_03 = line_y(page, "complaints", "0.001"), line_y(page, "complaints", "0.003")
        assert y_03 < y_01  # 0.3% is drawn higher up
        expected = dict(zip((d.isoformat() for d in seeded.dates), seeded.trailing_complaint_rate(7)))
        week = dots(page, "complaints", "7-day complaint rate")
        assert len(week) >= 80
        for dot in week:
            assert dot["value"] == pytest.approx(expected[dot["date"]], abs=1e-6), dot
            assert (dot["cy"] < y_01) == (expected[dot["date"]] > 0.001), dot
        above = [dot["date"] for dot in week if dot["cy"] < y_01]
        assert above[0] == up.isoformat()
        assert max(above) < down.isoformat()
        assert all(dot["cy"] > y_03 for dot in week)  # the seed never reaches 0.3%

        # The subscriber areas end on today's counts, and the bars hold what was written.
        active = page.locator("#panel-subscribers polygon[data-series='Active']").get_attribute("data-last")
        from subscriptions.models import Subscriber

        assert int(active) == Subscriber.objects.filter(status="active").count()
        failure_day = seeded.dates[-41].isoformat()
        failed_bar = page.locator(f"#panel-digests rect.c-failed[data-date='{failure_day}']")
        failed_on_day = Delivery.objects.filter(digest_date=failure_day, status="failed").count()
        assert int(failed_bar.get_attribute("data-value")) == failed_on_day > 100

        # Unsubscribes by origin in the seed's proportions (half one-click, 30% page, 20% provider).
        by_origin = page.locator("#panel-unsubscribes rect").evaluate_all(
            "els => els.reduce((t, e) => { t[e.getAttribute('class')] = (t[e.getAttribute('class')] || 0) + +e.dataset.value; return t; }, {})"
        )
        assert by_origin["c-one-click"] > by_origin["c-page"] > by_origin["c-provider"] > 0, by_origin

        # A bar leads to the deliveries behind it.
        failed_bar.click()
        page.wait_for_url(re.compile(r"/admin/newsletter/delivery/\?"))
        assert f"digest_date={failure_day}" in page.url and "status__exact=failed" in page.url
        assert page.locator("#changelist").is_visible()
        assert f"{failed_on_day} deliveries" in page.locator(".paginator").inner_text()

        # A tile leads to its list: the complaint rate to the complaints.
        page.goto("/admin/")
        page.locator(".ops-tile", has_text="Complaint rate").get_by_role("link").click()
        page.wait_for_url(re.compile(r"/admin/subscriptions/consentevent/\?kind__exact=complaint"))
        assert f"{sum(seeded.complaints)} consent events" in page.locator(".paginator").inner_text()
    finally:
        context.close()


def test_the_dashboard_in_dark_mode(chromium, live_server, transactional_db, topics, django_user_model):  # noqa: F811
    seed(subscribers=800, days=60, spike_start=20, spike_end=10)
    context, page = log_in(chromium, live_server.url, django_user_model, color_scheme="dark")
    try:
        assert not page.evaluate(OVERFLOWING_ELEMENTS)
        # Chart text follows the admin's theme: light text on the dark background.
        fill = page.locator("#panel-digests text.tick").first.evaluate("e => getComputedStyle(e).fill")
        red, green, blue = map(int, re.findall(r"\d+", fill)[:3])
        assert min(red, green, blue) > 120, fill
        # Lines stay lines on the dark theme (their colour rules there must not fill them).
        for line in ("#panel-signups polyline.c-confirm", "#panel-votes polyline.c-voters"):
            assert page.locator(line).first.evaluate("e => getComputedStyle(e).fill") == "none", line
        page.screenshot(path=str(SCREENSHOTS / "dashboard-dark.png"), full_page=True)
        page.locator("#reader-feedback").screenshot(path=str(SCREENSHOTS / "dashboard-feedback-dark.png"))
    finally:
        context.close()


def test_the_reader_feedback_section_on_a_phone(chromium, live_server, transactional_db, topics, django_user_model):  # noqa: F811
    from newsletter.models import Paper

    seed(subscribers=800, days=60)
    # Scraped titles can be long, unbroken, and hostile.
    Paper.objects.update(title="Towards" + "VeryLongUnbrokenTokens" * 12 + ' <b onmouseover="alert(1)">bold</b>')
    context, page = log_in(chromium, live_server.url, django_user_model, color_scheme=PHONE["color_scheme"], viewport=PHONE["viewport"])
    try:
        section = page.locator("#reader-feedback")
        # Nothing in the section is wider than the phone (a long scraped title wraps).
        too_wide = section.evaluate(
            "(s) => [...s.querySelectorAll('*')].filter(e => e.getBoundingClientRect().right > document.documentElement.clientWidth + 1)"
            ".map(e => e.tagName.toLowerCase() + (e.className && e.className.baseVal === undefined ? '.' + e.className : ''))"
        )
        assert not too_wide, too_wide
        # ... and inside its cell: the title does not run under the counts.
        spilling = section.locator("#panel-most-voted td").evaluate_all("els => els.filter(e => e.scrollWidth > e.clientWidth + 1).length")
        assert section.locator("#panel-most-voted td").count() == 15 and spilling == 0
        assert section.locator("#panel-personalisation dt").count() == 5
        assert section.locator("#panel-most-voted b").count() == 0  # the title's markup is text
        assert '<b onmouseover="alert(1)">' in section.locator("#panel-most-voted td").first.inner_text()
        section.screenshot(path=str(SCREENSHOTS / "dashboard-feedback-phone.png"))
    finally:
        context.close()


LISTS = [
    "subscriptions.subscriber", "subscriptions.consentevent", "subscriptions.topic", "newsletter.delivery",
    "newsletter.scraperun", "newsletter.paper", "newsletter.paperrank", "newsletter.healthalert",
]


def test_every_admin_list_fits_a_1280px_screen(chromium, live_server, transactional_db, topics, django_user_model, make_scrape):  # noqa: F811
    from datetime import timedelta

    from django.urls import reverse
    from django.utils import timezone

    from newsletter import health

    seed(subscribers=300, days=30, email_domain="a-rather-long-subdomain.example-university.edu")
    long_title = "Scaling Test-Time Compute for Multimodal Reasoning Agents with Verifiable Rewards and Long Context " * 2
    make_scrape([{"arxiv_id": f"2611.{i:05d}", "title": long_title, "upvotes": 100 - i, "topics": {"agents": 9.0, "code": 4.0}}
                 for i in range(5)])
    make_scrape([], status="failed", started_at=timezone.now() - timedelta(hours=1))
    from newsletter.models import ScrapeRun

    ScrapeRun.objects.filter(status="failed").update(
        error="HTTPSConnectionPool(host='huggingface.co', port=443): Max retries exceeded with url: /papers/trending " * 3,
        source="https://huggingface.co/papers/trending?with=a&very=long&query=string&that=goes&on=and-on-and-on-and-on",
    )
    settings.ADMINS = [("Ops", "ops@example.org")]
    health.alert_admins(timezone.now() + timedelta(days=3))
    context, page = log_in(chromium, live_server.url, django_user_model)
    too_wide = {}
    try:
        for model in LISTS:
            app, name = model.split(".")
            page.goto(reverse(f"admin:{app}_{name}_changelist"))
            page.locator("#changelist").wait_for()
            assert page.locator("#result_list tbody tr").count() > 0, model
            page.screenshot(path=str(SCREENSHOTS / f"list-{name}.png"))
            overflow = page.evaluate(OVERFLOWING_ELEMENTS)
            if overflow:
                too_wide[model] = overflow[:4]
        assert not too_wide, f"wider than 1280 px: {too_wide}"
    finally:
        context.close()
