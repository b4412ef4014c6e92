"""The hostile-input battery, written once and run two ways: by tests/test_hostile_input.py
through Django's test client, and by chaos/hostile_input.py over real HTTP against gunicorn
with production settings. Each case sends something an attacker or a broken client would
and checks the answer and that nothing changed that should not have.

A case is a function taking an `http` adapter and a `world` (the subscribers and links it
may attack) and returning a list of (description, held) pairs."""

import time
import uuid
from dataclasses import dataclass, field
from unittest import mock

from django.core import signing

from subscriptions import tokens
from subscriptions.models import ConsentEvent, Subscriber, Topic

XSS = '"><script>alert("x")</script><img src=x onerror=alert(1)>'


def has_raw_markup(body: str) -> bool:
    """True if the XSS payload came back as markup instead of escaped text."""
    return "<script>alert" in body or "<img src=x" in body


@dataclass
class Response:
    status: int
    body: str
    headers: dict = field(default_factory=dict)


@dataclass
class World:
    victim: Subscriber
    other: Subscriber
    pending: Subscriber

    @classmethod
    def create(cls) -> "World":
        tag = uuid.uuid4().hex[:8]
        topic = Topic.objects.filter(active=True).first()
        victim = Subscriber.objects.create(email=f"victim-{tag}@example.org", status=Subscriber.Status.ACTIVE)
        other = Subscriber.objects.create(email=f"other-{tag}@example.org", status=Subscriber.Status.ACTIVE)
        pending = Subscriber.objects.create(email=f"pending-{tag}@example.org", status=Subscriber.Status.PENDING)
        for s in (victim, other, pending):
            s.topics.set([topic])
        return cls(victim, other, pending)

    def snapshot(self) -> list:
        rows = []
        for s in (self.victim, self.other, self.pending):
            s = Subscriber.objects.get(pk=s.pk)
            rows.append((s.status, s.paused, s.frequency, s.send_hour, s.timezone, s.secret,
                         tuple(sorted(s.topics.values_list("slug", flat=True))), s.consent_events.count()))
        return rows


def bad_tokens(world: World, purpose: str) -> dict[str, str]:
    """Every way a link can be wrong, for links of `purpose` pointing at the victim."""
    victim, other = world.victim, world.other
    good = tokens.make_token(victim, purpose, {"topics": ["agents"], "frequency": "daily"} if purpose == tokens.CONFIRM else None)
    pk, _, signed = good.partition(".")
    other_good = tokens.make_token(other, purpose)
    variants = {
        "random": f"{pk}.{uuid.uuid4().hex}",
        "truncated": good[: len(good) - 6],
        "tampered signature": good[:-1] + ("A" if good[-1] != "A" else "B"),
        "other subscriber's id with this signature": f"{other.pk}.{signed}",
        "this subscriber's id with the other's signature": f"{pk}.{other_good.partition('.')[2]}",
        "signed with the wrong purpose": tokens.make_token(victim, tokens.VIEW_DIGEST),
        "signed with another key": f"{pk}." + signing.TimestampSigner(key="not-the-key", salt=f"subscriptions.{purpose}:{pk}").sign_object({}),
        "unknown subscriber": f"987654321.{signed}",
        "not a number": f"abc.{signed}",
        "empty payload": f"{pk}.",
        "huge": "9" * 4000,
    }
    if purpose == tokens.PREFERENCES:
        old_secret_token = good
        variants["revoked (made with an old secret)"] = old_secret_token  # checked after rotation below
    return variants


def _expect_refused(http, world, method, path, data=None, **kw) -> bool:
    before = world.snapshot()
    response = http.request(method, path, data=data, **kw)
    return response.status in (400, 403, 404, 405, 410) and world.snapshot() == before and "Traceback" not in response.body


def case_forged_links(http, world):
    results = []
    for purpose, prefix in ((tokens.PREFERENCES, "/preferences/"), (tokens.UNSUBSCRIBE, "/unsubscribe/"), (tokens.CONFIRM, "/confirm/")):
        variants = bad_tokens(world, purpose)
        revoked = variants.pop("revoked (made with an old secret)", None)
        for name, token in variants.items():
            for method in ("GET", "POST"):
                data = {"List-Unsubscribe": "One-Click", "action": "save", "topics": ["code"]}
                held = _expect_refused(http, world, method, f"{prefix}{token}/", data=data, csrf=True)
                results.append((f"{method} {prefix} with {name} token is refused", held))
        if revoked:
            world.victim.revoke_links()
            held = _expect_refused(http, world, "GET", f"{prefix}{revoked}/")
            results.append((f"GET {prefix} with a revoked token is refused", held))
    # Expired confirmation link: refused with the resend page, nothing confirmed.
    with mock.patch("time.time", return_value=time.time() - 8 * 86400):
        expired = tokens.make_token(world.pending, tokens.CONFIRM, {"topics": ["agents"], "frequency": "daily"})
    for method in ("GET", "POST"):
        before = world.snapshot()
        response = http.request(method, f"/confirm/{expired}/", csrf=True)
        results.append((f"{method} expired confirmation link gets 410 and changes nothing",
                        response.status == 410 and "expired" in response.body and world.snapshot() == before))
    return results


def case_one_click_variants(http, world):
    results = []
    variants = [
        ("form body", dict(data="List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded")),
        ("multipart body", dict(data={"List-Unsubscribe": "One-Click"}, multipart=True)),
        ("no body", dict()),
        ("cookies and no CSRF token", dict(data={"List-Unsubscribe": "One-Click"}, cookies={"csrftoken": "x" * 32, "sessionid": "junk"})),
    ]
    for name, kwargs in variants:
        target = Subscriber.objects.create(email=f"oneclick-{uuid.uuid4().hex[:8]}@example.org", status=Subscriber.Status.ACTIVE)
        others_before = world.snapshot()
        path = tokens.unsubscribe_url(target).split("://", 1)[1].split("/", 1)[1]
        first = http.request("POST", "/" + path, **kwargs)
        again = http.request("POST", "/" + path, **kwargs)
        target.refresh_from_db()
        held = (first.status == 200 and again.status == 200 and "Location" not in first.headers
                and target.status == Subscriber.Status.UNSUBSCRIBED
                and target.consent_events.filter(kind=ConsentEvent.Kind.UNSUBSCRIBE).count() == 1
                and world.snapshot() == others_before)
        results.append((f"one-click POST with {name}: 200, unsubscribes that address once, nobody else", held))
    target = Subscriber.objects.create(email=f"oneclick-get-{uuid.uuid4().hex[:8]}@example.org", status=Subscriber.Status.ACTIVE)
    path = "/" + tokens.unsubscribe_url(target).split("://", 1)[1].split("/", 1)[1]
    response = http.request("GET", path)
    target.refresh_from_db()
    results.append(("GET on the one-click URL only shows a button", response.status == 200 and target.status == Subscriber.Status.ACTIVE))
    for method in ("PUT", "DELETE", "PATCH"):
        response = http.request(method, path)
        target.refresh_from_db()
        results.append((f"{method} on the one-click URL is refused", response.status == 405 and target.status == Subscriber.Status.ACTIVE))
    return results


def signup_data(email="hostile@example.org", **extra):
    return {"email": email, "topics": ["agents"], "frequency": "daily", **extra}


def case_csrf(http, world):
    results = []
    pref = "/" + tokens.preferences_url(world.victim).split("://", 1)[1].split("/", 1)[1]
    confirm = f"/confirm/{tokens.make_token(world.pending, tokens.CONFIRM, {'topics': ['agents'], 'frequency': 'daily'})}/"
    for name, method, path, data in (
        ("sign-up", "POST", "/", signup_data(f"csrf-{uuid.uuid4().hex[:6]}@example.org")),
        ("preferences save", "POST", pref, {"action": "save", "topics": ["code"], "frequency": "weekly", "weekday": 1, "send_hour": 3, "timezone": "UTC", "papers_per_email": 3}),
        ("preferences pause", "POST", pref, {"action": "pause"}),
        ("confirmation", "POST", confirm, {}),
    ):
        before = world.snapshot()
        count = Subscriber.objects.count()
        response = http.request(method, path, data=data, csrf=False)
        held = response.status == 403 and world.snapshot() == before and Subscriber.objects.count() == count
        results.append((f"{name} without a CSRF token is refused", held))
    return results


HEADER_INJECTIONS = [
    "a@b.c\r\nBcc: x@y.z",
    "a@b.c\nBcc: x@y.z",
    "a@b.c\rBcc: x@y.z",
    "a@b.c%0d%0aBcc: x@y.z",
    "\"a\r\nBcc: x@y.z\"@b.c",
    "a@b.c\r\nSubject: hijacked\r\n\r\nbody",
    "Evil <a@b.c>, x@y.z",
    "a@b.c,x@y.z",
]


def case_signup_field_attacks(http, world, mail_count=None):
    """Header injection and XSS in every form field; 10 kB and 1 MB bodies."""
    results = []
    for value in HEADER_INJECTIONS:
        count = Subscriber.objects.count()
        response = http.request("POST", "/", data=signup_data(value), csrf=True)
        held = response.status == 400 and Subscriber.objects.count() == count and "does not look like an email" in response.body
        results.append((f"header injection in email {value!r} refused with a message, nothing stored", held))
    for fieldname in ("email", "topics", "frequency", "website"):
        data = signup_data(f"xss-{uuid.uuid4().hex[:6]}@example.org")
        data[fieldname] = XSS if fieldname != "topics" else [XSS]
        count = Subscriber.objects.count()
        response = http.request("POST", "/", data=data, csrf=True)
        stored = Subscriber.objects.count() - count
        # The honeypot accepts silently (looks like success) but stores nothing.
        ok_status = response.status == (200 if fieldname == "website" else 400)
        results.append((f"XSS in sign-up field {fieldname} is refused or ignored and never echoed raw",
                        ok_status and stored == 0 and not has_raw_markup(response.body)))
    for size, name in ((10_000, "10 kB"), (1024 * 1024, "1 MB")):
        count = Subscriber.objects.count()
        response = http.request("POST", "/", data=signup_data("x" * size + "@example.org"), csrf=True)
        results.append((f"{name} email field refused, nothing stored", response.status in (400, 413) and Subscriber.objects.count() == count))
    pref = "/" + tokens.preferences_url(world.victim).split("://", 1)[1].split("/", 1)[1]
    before = world.snapshot()
    response = http.request("POST", pref, data={"action": "save", "topics": [XSS], "frequency": XSS, "weekday": XSS,
                                               "send_hour": "7\r\nX: y", "timezone": "../../etc/passwd", "papers_per_email": "1e9"}, csrf=True)
    results.append(("XSS and junk in every preferences field refused, nothing changed",
                    response.status == 400 and world.snapshot() == before and not has_raw_markup(response.body)))
    before = world.snapshot()
    response = http.request("POST", pref, data={"action": XSS}, csrf=True)
    results.append(("unknown preferences action refused", response.status == 400 and world.snapshot() == before))
    return results


def case_signup_flood(http, world, limit: int):
    """`limit` sign-ups pass from one address, the rest get 429; another address still can."""
    statuses = []
    for i in range(limit + 5):
        response = http.request("POST", "/", data=signup_data(f"flood-{i}-{uuid.uuid4().hex[:6]}@example.org"), csrf=True, source_ip="127.0.0.9")
        statuses.append(response.status)
    other = http.request("POST", "/", data=signup_data(f"bystander-{uuid.uuid4().hex[:6]}@example.org"), csrf=True, source_ip="127.0.0.10")
    page = http.request("GET", "/", source_ip="127.0.0.9")
    return [
        (f"sign-up flood from one IP: first {limit} accepted, the rest get 429",
         statuses[:limit] == [200] * limit and set(statuses[limit:]) == {429}),
        ("during the flood another IP can still sign up", other.status == 200),
        ("during the flood the form still loads for everyone", page.status == 200),
    ]


CASES = [case_forged_links, case_one_click_variants, case_csrf, case_signup_field_attacks]


def run_all(http, world, flood_limit: int) -> list[tuple[str, bool]]:
    results = []
    for case in CASES:
        results.extend(case(http, world))
    results.extend(case_signup_flood(http, world, flood_limit))
    return results


# --- What needs the digest and scraper code ---------------------------------------------------
# These cases build what they attack themselves (a scrape run with a hostile paper, sent
# deliveries, a staff session) and send digests in this process, through the real pipeline,
# to a real SMTP sink and to the tests' fake Mailgun: the same in the test suite and in the
# script over real HTTP.

HEADER_BREAK = "\r\nBcc: evil@example.net\r\nX-Injected: yes"
MERGE_FORGERY = "%recipient.unsubscribe_url%"


def _tag() -> str:
    return uuid.uuid4().hex[:8]


def _path(url: str) -> str:
    return "/" + url.split("://", 1)[1].split("/", 1)[1]


def _hostile_run(topic):
    """A good, newest scrape run whose only paper carries XSS, header breaks and merge-field
    forgeries in every scraped field (written as stored, whatever the parser would allow)."""
    import random

    from django.utils import timezone

    from newsletter.models import Paper, PaperRank, PaperTopicScore, ScrapeRun

    now = timezone.now()
    run = ScrapeRun.objects.create(source="https://huggingface.co/papers/trending", status=ScrapeRun.Status.OK,
                                   started_at=now, finished_at=now, papers_found=1, parser="props", records_skipped=1,
                                   error=f"Not an error; the run succeeded. Warnings:\nskipped record {XSS}{HEADER_BREAK}")
    paper = Paper.objects.create(
        arxiv_id=f"2611.{random.randint(10000, 99999)}",
        title=f"{MERGE_FORGERY} {XSS} Agents{HEADER_BREAK}",
        abstract=f"{XSS} abstract{HEADER_BREAK}",
        ai_summary=f"{XSS} summary {MERGE_FORGERY}{HEADER_BREAK}",
        ai_keywords=[XSS, HEADER_BREAK],
        authors=[{"name": f"{XSS}{HEADER_BREAK}"}, f"Plain {XSS}"],
        github_repo="javascript:alert(1)//https://github.com/x",
        project_page="javascript:alert(2)",
        thumbnail="javascript:alert(3)",
        organization=f"{XSS}{HEADER_BREAK}",
        upvotes=7,
    )
    PaperRank.objects.create(run=run, paper=paper, rank=1, upvotes=7)
    PaperTopicScore.objects.create(paper=paper, topic=topic, score=99.0, matched=[XSS])
    return run, paper


def _reader(topic, name: str) -> Subscriber:
    reader = Subscriber.objects.create(email=f"{name}-{_tag()}@example.org", status=Subscriber.Status.ACTIVE)
    reader.topics.set([topic])
    return reader


def _send_one(reader, **email_settings):
    """Send `reader` today's digest through the real chunk sender with these settings."""
    from django.test import override_settings
    from django.utils import timezone

    from newsletter.digests import chunks
    from newsletter.models import Delivery

    delivery = Delivery.objects.create(subscriber=reader, digest_date=timezone.now().date())
    with override_settings(**email_settings):
        report = chunks.send_chunk([delivery.pk], claimer=f"hostile-{_tag()}")
    delivery.refresh_from_db()
    return delivery, report


def _no_script_links(html: str) -> bool:
    import re

    return not re.search(r"""(href|src)\s*=\s*["']?\s*javascript:""", html, re.I)


def _email_checks(where: str, reader, subject: str, html: str, text: str, headers: dict) -> list[tuple[str, bool]]:
    header_values = [subject, *headers.values()]
    unsubscribe = headers.get("List-Unsubscribe", "")
    owner = None
    try:
        owner, _ = tokens.read_token(unsubscribe.strip("<>").rstrip("/").rsplit("/", 1)[-1], tokens.UNSUBSCRIBE)
    except (tokens.InvalidToken, ValueError):
        pass
    return [
        (f"{where}: scraped XSS is escaped in the HTML part", not has_raw_markup(html) and "&lt;script&gt;" in html),
        (f"{where}: no javascript: link from scraped URLs", _no_script_links(html)),
        (f"{where}: scraped header breaks stay out of every header",
         not any("\r" in v or "\n" in v for v in header_values) and not any(k.lower() in ("bcc", "x-injected") for k in headers)),
        (f"{where}: the subject holds the title as text", subject.strip().startswith("Trending papers: ") and XSS[:20] in subject),
        (f"{where}: merge syntax in scraped text is not substituted (subject, HTML, text)",
         all("%\u200brecipient.unsubscribe_url%" in part for part in (subject, text, html)) and "http" not in subject),
        (f"{where}: the one List-Unsubscribe is the reader's own", owner is not None and owner.pk == reader.pk),
    ]


def case_scraped_xss_everywhere(http, world):
    """XSS, header breaks and merge-field forgeries in every scraped field: the digest as
    received over SMTP and through the fake Mailgun (HTML, text, headers), the
    view-in-browser page, and the admin pages that show papers and digests."""
    from django.conf import settings
    from django.contrib.auth.models import User
    from django.test import Client

    from chaos.support import CountingSmtpSink
    from tests.fake_provider import FakeMailgun

    results = []
    topic = world.victim.topics.first()
    run, paper = _hostile_run(topic)

    # Over SMTP: the bytes a mail server receives.
    smtp_reader = _reader(topic, "xss-smtp")
    sink = CountingSmtpSink(keep_messages=True)
    try:
        delivery, report = _send_one(smtp_reader, EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
                                     EMAIL_HOST="127.0.0.1", EMAIL_PORT=sink.port)
        sink.wait_for_total(1, timeout=10)
    finally:
        sink.stop()
    results.append(("SMTP: the hostile digest was sent to its reader only",
                    delivery.status == "sent" and dict(sink.per_recipient) == {smtp_reader.email: 1}))
    if sink.messages:
        message = sink.messages[0]
        headers = {k: str(v) for k, v in message.items()}
        html = message.get_body(preferencelist=("html",)).get_content()
        text = message.get_body(preferencelist=("plain",)).get_content()
        results += _email_checks("SMTP", smtp_reader, str(message["Subject"]), html, text, headers)

    # Through Anymail's Mailgun backend: the provider substitutes merge fields itself.
    mailgun_reader = _reader(topic, "xss-mailgun")
    with FakeMailgun() as fake:
        anymail = {**settings.ANYMAIL, **{k: v for k, v in fake.env().items() if k.startswith("MAILGUN_")}}
        delivery, report = _send_one(mailgun_reader, EMAIL_BACKEND="anymail.backends.mailgun.EmailBackend", ANYMAIL=anymail)
    results.append(("Mailgun: the hostile digest was accepted for its reader only",
                    delivery.status == "sent" and [m.to for m in fake.accepted] == [mailgun_reader.email]))
    if fake.accepted:
        copy = fake.accepted[0]
        results += _email_checks("Mailgun", mailgun_reader, copy.subject, copy.html, copy.text, copy.headers)

    # The view-in-browser page of the sent digest.
    view = tokens.make_token(mailgun_reader, tokens.VIEW_DIGEST, {"d": delivery.pk})
    page = http.request("GET", f"/digest/{view}/")
    results.append(("view in browser: 200, XSS escaped, no javascript: link, CSP without scripts",
                    page.status == 200 and not has_raw_markup(page.body) and "&lt;script&gt;" in page.body
                    and _no_script_links(page.body) and "script-src" not in page.headers.get("Content-Security-Policy", "x script-src")))

    # The admin, as staff.
    staff = User.objects.create_superuser(f"staff-{_tag()}", "staff@example.org", uuid.uuid4().hex)
    client = Client()
    client.force_login(staff)
    cookies = {settings.SESSION_COOKIE_NAME: client.cookies[settings.SESSION_COOKIE_NAME].value}
    not_sent_yet = _reader(topic, "xss-preview")
    # (page, path, what must show on it: the escaped payload, or the row asked for)
    for name, path, shown in (
        ("papers list", f"/admin/newsletter/paper/?q={paper.arxiv_id}", "&lt;script&gt;"),
        ("paper page", f"/admin/newsletter/paper/{paper.pk}/change/", "&lt;script&gt;"),
        ("scrape runs", "/admin/newsletter/scraperun/", "huggingface.co/papers/trending"),
        ("scrape run page", f"/admin/newsletter/scraperun/{run.pk}/change/", "&lt;script&gt;"),
        ("deliveries", f"/admin/newsletter/delivery/?q={mailgun_reader.email}", mailgun_reader.email),
        ("next-digest preview", f"/admin/newsletter/delivery/preview/{not_sent_yet.pk}/", "&lt;script&gt;"),
    ):
        response = http.request("GET", path, cookies=cookies)
        results.append((f"admin {name}: 200, scraped XSS escaped, no javascript: link",
                        response.status == 200 and not has_raw_markup(response.body) and _no_script_links(response.body)
                        and shown in response.body))
    return results


def _sent_delivery(subscriber, title: str):
    """A sent digest of one paper for `subscriber` (as the sender records it)."""
    import random

    from django.utils import timezone

    from newsletter.models import Delivery, DigestContent, DigestItem, Paper

    paper = Paper.objects.create(arxiv_id=f"2611.{random.randint(10000, 99999)}", title=title, upvotes=1)
    content = DigestContent.objects.create(key=DigestContent.key_for([paper.pk]))
    DigestItem.objects.create(content=content, paper=paper, position=0)
    return Delivery.objects.create(subscriber=subscriber, digest_date=timezone.now().date(), status=Delivery.Status.SENT,
                                   content=content, sent_at=timezone.now())


def case_view_in_browser_links(http, world):
    """Forged, truncated, revoked, wrong-purpose and other-subscriber tokens on the
    view-in-browser link: refused, and nothing of anyone's digest shown."""
    from newsletter.models import Delivery

    results = []
    victim, other = world.victim, world.other
    marker = f"Victim-only digest {_tag()}"
    mine = Delivery.objects.filter(subscriber=victim, status=Delivery.Status.SENT).first() or _sent_delivery(victim, marker)
    marker = mine.content.items.first().paper.title
    theirs = Delivery.objects.filter(subscriber=other, status=Delivery.Status.SENT).first() or _sent_delivery(other, f"Other's digest {_tag()}")
    good = tokens.make_token(victim, tokens.VIEW_DIGEST, {"d": mine.pk})
    pk, _, signed = good.partition(".")
    response = http.request("GET", f"/digest/{good}/")
    results.append(("view in browser: the victim's own link works (the attacks below are meaningful)",
                    response.status == 200 and marker in response.body))

    variants = {
        "random": f"{pk}.{uuid.uuid4().hex}",
        "truncated": good[:-6],
        "tampered signature": good[:-1] + ("A" if good[-1] != "A" else "B"),
        "another subscriber's own token naming the victim's delivery": tokens.make_token(other, tokens.VIEW_DIGEST, {"d": mine.pk}),
        "the victim's token naming another subscriber's delivery": tokens.make_token(victim, tokens.VIEW_DIGEST, {"d": theirs.pk}),
        "the other's id with the victim's signature": f"{other.pk}.{signed}",
        "an unsubscribe token": tokens.make_token(victim, tokens.UNSUBSCRIBE),
        "a preferences token": tokens.make_token(victim, tokens.PREFERENCES),
        "a delivery id that is not a number": tokens.make_token(victim, tokens.VIEW_DIGEST, {"d": str(mine.pk)}),
        "a delivery id that is a boolean": tokens.make_token(victim, tokens.VIEW_DIGEST, {"d": True}),
        "a list of delivery ids": tokens.make_token(victim, tokens.VIEW_DIGEST, {"d": [mine.pk, theirs.pk]}),
        "no delivery id": tokens.make_token(victim, tokens.VIEW_DIGEST),
        "a huge token": "9" * 4000,
    }
    for name, token in variants.items():
        response = http.request("GET", f"/digest/{token}/")
        results.append((f"view in browser with {name} is refused and shows no digest",
                        response.status in (400, 404) and marker not in response.body and "Traceback" not in response.body))
    for method in ("POST", "PUT", "DELETE"):
        response = http.request(method, f"/digest/{good}/")
        results.append((f"{method} on a view-in-browser link is refused",
                        response.status in (403, 405) and marker not in response.body))
    victim.revoke_links()
    response = http.request("GET", f"/digest/{good}/")
    results.append(("view in browser with a revoked link is refused", response.status == 400 and marker not in response.body))
    return results


# Provider webhooks: the sample events each provider documents (their shape and fields, our
# addresses), posted with and without the webhook secret.

def _mailgun_event(event: str, recipient: str, **fields) -> dict:
    """Mailgun: {"signature": {timestamp, token, signature}, "event-data": {...}}, signed with
    the webhook signing key (HMAC-SHA256 over timestamp + token)."""
    import hashlib
    import hmac

    from chaos.support import WEBHOOK_ENV

    timestamp, token = str(int(time.time())), uuid.uuid4().hex + uuid.uuid4().hex[:18]
    signature = hmac.new(WEBHOOK_ENV["MAILGUN_WEBHOOK_SIGNING_KEY"].encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    data = {
        "account": {"id": "1234567890303a4bd1f33898"}, "domain": {"name": "mg.example.org"},
        "event": event, "id": uuid.uuid4().hex[:22], "timestamp": time.time(),
        "log-level": "error" if event == "failed" else "warn", "recipient": recipient,
        "recipient-domain": recipient.split("@")[1], "envelope": {"sender": "papers@mg.example.org", "targets": recipient, "transport": "smtp"},
        "message": {"headers": {"to": recipient, "message-id": "20261124120000.1.1@mg.example.org",
                                "from": "Trending Papers <papers@mg.example.org>", "subject": "Trending papers: ..."},
                    "attachments": [], "size": 4711},
        "flags": {"is-authenticated": True, "is-test-mode": False, "is-routed": False, "is-system-test": False},
        "tags": [], "campaigns": [], "user-variables": {},
        **fields,
    }
    return {"signature": {"timestamp": timestamp, "token": token, "signature": signature}, "event-data": data}


def _sendgrid_event(event: str, email: str, **fields) -> list:
    """SendGrid Event Webhook: a JSON array of events."""
    return [{"email": email, "timestamp": int(time.time()), "smtp-id": "<14c5d75ce93.dfd.64b469@ismtpd-555>", "event": event,
             "category": ["digest"], "sg_event_id": uuid.uuid4().hex, "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
             **fields}]


def _postmark_event(record_type: str, email: str, **fields) -> dict:
    if record_type == "SubscriptionChange":
        return {"RecordType": record_type, "MessageID": str(uuid.uuid4()), "ServerID": 23, "MessageStream": "outbound",
                "ChangedAt": "2026-11-24T10:53:34.416071Z", "Recipient": email, "Origin": "Recipient", "SuppressSending": True,
                "SuppressionReason": "ManualSuppression", "Tag": "digest", "Metadata": {}, **fields}
    return {"RecordType": record_type, "MessageStream": "outbound", "ID": 4323372036854775807, "Tag": "digest",
            "MessageID": str(uuid.uuid4()), "ServerID": 23, "Email": email, "From": "papers@example.org",
            "BouncedAt": "2026-11-24T16:33:54.9070259Z", "DumpAvailable": True, "Inactive": True, "CanActivate": True,
            "Subject": "Trending papers", "Metadata": {}, "Content": "", **fields}


WEBHOOK_SAMPLES = [
    ("mailgun", "bounce", Subscriber.Status.BOUNCED, lambda a: _mailgun_event(
        "failed", a, severity="permanent", reason="bounce",
        **{"delivery-status": {"attempt-no": 1, "code": 550, "message": "5.1.1 The email account that you tried to reach does not exist.",
                               "description": "", "session-seconds": 0.1, "mx-host": "mx.example.org"}})),
    ("mailgun", "complaint", Subscriber.Status.COMPLAINED, lambda a: _mailgun_event("complained", a)),
    ("mailgun", "unsubscribe", Subscriber.Status.UNSUBSCRIBED, lambda a: _mailgun_event("unsubscribed", a, ip="192.0.2.1")),
    ("sendgrid", "bounce", Subscriber.Status.BOUNCED, lambda a: _sendgrid_event(
        "bounce", a, reason="550 5.1.1 The email account that you tried to reach does not exist.", status="5.1.1",
        type="bounce", bounce_classification="Invalid Address", ip="192.0.2.1", tls=1)),
    ("sendgrid", "complaint", Subscriber.Status.COMPLAINED, lambda a: _sendgrid_event("spamreport", a)),
    ("sendgrid", "unsubscribe", Subscriber.Status.UNSUBSCRIBED, lambda a: _sendgrid_event("unsubscribe", a)),
    ("postmark", "bounce", Subscriber.Status.BOUNCED, lambda a: _postmark_event(
        "Bounce", a, Type="HardBounce", TypeCode=1, Name="Hard bounce",
        Description="The server was unable to deliver your message (ex: unknown user, mailbox not found).",
        Details="smtp;550 5.1.1 The email account that you tried to reach does not exist.")),
    ("postmark", "complaint", Subscriber.Status.COMPLAINED, lambda a: _postmark_event(
        "SpamComplaint", a, Type="SpamComplaint", TypeCode=512, Name="Spam complaint",
        Description="The subscriber explicitly marked this message as spam.", Details="Test spam complaint details")),
    ("postmark", "unsubscribe", Subscriber.Status.UNSUBSCRIBED, lambda a: _postmark_event("SubscriptionChange", a)),
]


def _post_webhook(http, esp: str, payload, auth: str | None):
    import json
    from base64 import b64encode

    headers = {"Authorization": "Basic " + b64encode(auth.encode()).decode()} if auth else {}
    return http.request("POST", f"/anymail/{esp}/tracking/", data=json.dumps(payload), content_type="application/json", headers=headers)


def case_webhooks(http, world):
    """Webhook calls without the secret or with a wrong one are refused; each provider's
    documented bounce, complaint and unsubscribe event suppresses exactly that address."""
    from django.conf import settings
    from django.test import override_settings

    from chaos.support import WEBHOOK_ENV

    results = []
    secret = WEBHOOK_ENV["ANYMAIL_WEBHOOK_SECRET"]
    anymail = {**settings.ANYMAIL, "WEBHOOK_SECRET": secret, "MAILGUN_WEBHOOK_SIGNING_KEY": WEBHOOK_ENV["MAILGUN_WEBHOOK_SIGNING_KEY"]}
    with override_settings(ANYMAIL=anymail):  # in-process servers; gunicorn gets the same from WEBHOOK_ENV
        for esp, what, status, build in WEBHOOK_SAMPLES:
            people = [_reader(world.victim.topics.first(), f"hook-{esp}-{what}-{n}") for n in range(3)]
            target = people[1]

            def statuses():
                return [Subscriber.objects.get(pk=p.pk).status for p in people]

            before, world_before = statuses(), world.snapshot()
            payload = build(target.email)
            for label, auth in (("without the secret", None), ("with a wrong secret", "hostile:not-the-secret")):
                response = _post_webhook(http, esp, payload, auth)
                results.append((f"{esp} {what} webhook {label} is refused, nobody changes",
                                response.status in (400, 401, 403) and statuses() == before))
            response = _post_webhook(http, esp, payload, secret)
            after = statuses()
            results.append((f"{esp} {what} sample event suppresses exactly that address ({status})",
                            response.status == 200 and after == [before[0], status, before[2]] and world.snapshot() == world_before
                            and ConsentEvent.objects.filter(subscriber=target).count() == 1))
        target = _reader(world.victim.topics.first(), "hook-forged")
        forged = _mailgun_event("complained", target.email)
        forged["signature"]["signature"] = "0" * 64
        response = _post_webhook(http, "mailgun", forged, secret)
        target.refresh_from_db()
        results.append(("mailgun event with the right secret but a forged signature is refused",
                        response.status in (400, 401, 403) and target.status == Subscriber.Status.ACTIVE))
    return results


CASES += [case_scraped_xss_everywhere, case_view_in_browser_links, case_webhooks]
