"""The hostile-input battery, written once and run two ways: by tests/test_hostile_input.py
through Django's test client, and by chaos/hostile_input.py over real HTTP against gunicorn
with production settings. Each case sends something an attacker or a broken client would
and checks the answer and that nothing changed that should not have.

A case is a function taking an `http` adapter and a `world` (the subscribers and links it
may attack) and returning a list of (description, held) pairs."""

import re
import time
import uuid
from dataclasses import dataclass, field
from unittest import mock

from django.core import signing

from subscriptions import tokens
from subscriptions.models import ConsentEvent, Subscriber, Topic

from .hostile_env import ADMIN_EMAIL, WEBHOOK_ENV

XSS = '"><script>alert("x")</script><img src=x onerror=alert(1)>'


# A sign-up the form accepts is answered with a redirect to /check-inbox/ (redirect-after-POST).
SIGNUP_ACCEPTED = 303
# A digest's subject: "4 new in LLM reasoning, Agents · 30 Nov" (issue 12), no scraped text.
SHORT_SUBJECT = re.compile(r"^\d+ (new in|this week in) [^\r\n]+ · \d{1,2} [A-Z][a-z]{2}$")

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
        ok_status = response.status == (SIGNUP_ACCEPTED if fieldname == "website" else 400)
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
         statuses[:limit] == [SIGNUP_ACCEPTED] * limit and set(statuses[limit:]) == {429}),
        ("during the flood another IP can still sign up", other.status == SIGNUP_ACCEPTED),
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


def _send_one_over_smtp(reader):
    """Send `reader` today's digest over SMTP to a sink: (delivery, the sink, stopped)."""
    from .smtp_sink import SmtpSink

    with SmtpSink() as sink:
        delivery, _ = _send_one(reader, EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
                                EMAIL_HOST="127.0.0.1", EMAIL_PORT=sink.port)
        sink.wait_for_total(1, timeout=10)
    return delivery, sink


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
        (f"{where}: the subject is the short count-topics-date line, no scraped text in it",
         SHORT_SUBJECT.match(subject.strip()) is not None and len(subject.strip()) <= 70 and XSS[:20] not in subject),
        (f"{where}: merge syntax in scraped text is not substituted (HTML, text), nor in the subject",
         all("%\u200brecipient.unsubscribe_url%" in part for part in (text, html)) and "http" not in subject
         and "%recipient." not in subject),
        (f"{where}: the one List-Unsubscribe is the reader's own", owner is not None and owner.pk == reader.pk),
    ]


def case_scraped_xss_everywhere(http, world):
    """XSS, header breaks and merge-field forgeries in every scraped field: the digest as
    received over SMTP and through the fake Mailgun (HTML, text, headers), the
    view-in-browser page, and the admin pages that show papers and digests."""
    from django.conf import settings
    from django.contrib.auth.models import User
    from django.test import Client

    from .fake_providers import FakeMailgun

    results = []
    topic = world.victim.topics.first()
    run, paper = _hostile_run(topic)

    # Over SMTP: the bytes a mail server receives.
    smtp_reader = _reader(topic, "xss-smtp")
    delivery, sink = _send_one_over_smtp(smtp_reader)
    results.append(("SMTP: the hostile digest was sent to its reader only",
                    delivery.status == "sent" and dict(sink.per_recipient) == {smtp_reader.email: 1}))
    if sink.messages:
        message = sink.messages[0]["message"]
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
# addresses and the message id of a digest we sent), posted with and without the webhook secret.

def _mailgun_event(event: str, recipient: str, message_id: str, signed_at: float | None = None, **fields) -> dict:
    """Mailgun: {"signature": {timestamp, token, signature}, "event-data": {...}}, signed with
    the webhook signing key (HMAC-SHA256 over timestamp + token)."""
    import hashlib
    import hmac


    timestamp, token = str(int(signed_at or time.time())), uuid.uuid4().hex + uuid.uuid4().hex[:18]
    signature = hmac.new(WEBHOOK_ENV["MAILGUN_WEBHOOK_SIGNING_KEY"].encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    data = {
        "account": {"id": "1234567890303a4bd1f33898"}, "domain": {"name": "mg.example.org"},
        "event": event, "id": uuid.uuid4().hex[:22], "timestamp": time.time(),
        "log-level": "error" if event == "failed" else "warn", "recipient": recipient,
        "recipient-domain": recipient.split("@")[1], "envelope": {"sender": "papers@mg.example.org", "targets": recipient, "transport": "smtp"},
        "message": {"headers": {"to": recipient, "message-id": message_id,
                                "from": "Trending Papers <papers@mg.example.org>", "subject": "Trending papers: ..."},
                    "attachments": [], "size": 4711},
        "flags": {"is-authenticated": True, "is-test-mode": False, "is-routed": False, "is-system-test": False},
        "tags": [], "campaigns": [], "user-variables": {},
        **fields,
    }
    return {"signature": {"timestamp": timestamp, "token": token, "signature": signature}, "event-data": data}


def _sendgrid_event(event: str, email: str, message_id: str, **fields) -> list:
    """SendGrid Event Webhook: a JSON array of events (Anymail's anymail_id is a custom arg)."""
    return [{"email": email, "timestamp": int(time.time()), "smtp-id": "<14c5d75ce93.dfd.64b469@ismtpd-555>", "event": event,
             "category": ["digest"], "sg_event_id": uuid.uuid4().hex, "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
             "anymail_id": message_id, **fields}]


def _postmark_event(record_type: str, email: str, message_id: str, **fields) -> dict:
    if record_type == "SubscriptionChange":
        return {"RecordType": record_type, "MessageID": message_id, "ServerID": 23, "MessageStream": "outbound",
                "ChangedAt": "2026-11-24T10:53:34.416071Z", "Recipient": email, "Origin": "Recipient", "SuppressSending": True,
                "SuppressionReason": "ManualSuppression", "Tag": "digest", "Metadata": {}, **fields}
    return {"RecordType": record_type, "MessageStream": "outbound", "ID": 4323372036854775807, "Tag": "digest",
            "MessageID": message_id, "ServerID": 23, "Email": email, "From": "papers@example.org",
            "BouncedAt": "2026-11-24T16:33:54.9070259Z", "DumpAvailable": True, "Inactive": True, "CanActivate": True,
            "Subject": "Trending papers", "Metadata": {}, "Content": "", **fields}


WEBHOOK_SAMPLES = [
    ("mailgun", "bounce", Subscriber.Status.BOUNCED, lambda a, m: _mailgun_event(
        "failed", a, m, severity="permanent", reason="bounce",
        **{"delivery-status": {"attempt-no": 1, "code": 550, "message": "5.1.1 The email account that you tried to reach does not exist.",
                               "description": "", "session-seconds": 0.1, "mx-host": "mx.example.org"}})),
    ("mailgun", "complaint", Subscriber.Status.COMPLAINED, lambda a, m: _mailgun_event("complained", a, m)),
    ("mailgun", "unsubscribe", Subscriber.Status.UNSUBSCRIBED, lambda a, m: _mailgun_event("unsubscribed", a, m, ip="192.0.2.1")),
    ("sendgrid", "bounce", Subscriber.Status.BOUNCED, lambda a, m: _sendgrid_event(
        "bounce", a, m, reason="550 5.1.1 The email account that you tried to reach does not exist.", status="5.1.1",
        type="bounce", bounce_classification="Invalid Address", ip="192.0.2.1", tls=1)),
    ("sendgrid", "complaint", Subscriber.Status.COMPLAINED, lambda a, m: _sendgrid_event("spamreport", a, m)),
    ("sendgrid", "unsubscribe", Subscriber.Status.UNSUBSCRIBED, lambda a, m: _sendgrid_event("unsubscribe", a, m)),
    ("postmark", "bounce", Subscriber.Status.BOUNCED, lambda a, m: _postmark_event(
        "Bounce", a, m, Type="HardBounce", TypeCode=1, Name="Hard bounce",
        Description="The server was unable to deliver your message (ex: unknown user, mailbox not found).",
        Details="smtp;550 5.1.1 The email account that you tried to reach does not exist.")),
    ("postmark", "complaint", Subscriber.Status.COMPLAINED, lambda a, m: _postmark_event(
        "SpamComplaint", a, m, Type="SpamComplaint", TypeCode=512, Name="Spam complaint",
        Description="The subscriber explicitly marked this message as spam.", Details="Test spam complaint details")),
    ("postmark", "unsubscribe", Subscriber.Status.UNSUBSCRIBED, lambda a, m: _postmark_event("SubscriptionChange", a, m)),
]


def _post_webhook(http, esp: str, payload, auth: str | None):
    import json
    from base64 import b64encode

    headers = {"Authorization": "Basic " + b64encode(auth.encode()).decode()} if auth else {}
    return http.request("POST", f"/anymail/{esp}/tracking/", data=json.dumps(payload), content_type="application/json", headers=headers)


def _chaos_webhook_settings():
    """The webhook settings of chaos runs (WEBHOOK_ENV) for in-process servers; gunicorn gets
    the same from its environment."""
    from django.conf import settings
    from django.test import override_settings


    anymail = {**settings.ANYMAIL, "WEBHOOK_SECRET": WEBHOOK_ENV["ANYMAIL_WEBHOOK_SECRET"],
               "MAILGUN_WEBHOOK_SIGNING_KEY": WEBHOOK_ENV["MAILGUN_WEBHOOK_SIGNING_KEY"]}
    return override_settings(ANYMAIL=anymail, WEBHOOK_PROVIDER=WEBHOOK_ENV["WEBHOOK_PROVIDER"])


def case_webhooks(http, world):
    """On the configured provider's webhook (WEBHOOK_ENV), calls without the secret or with a
    wrong one are refused, and its documented bounce, complaint and unsubscribe event for a
    digest we sent suppresses exactly that address. The other providers' events, with the
    right secret, find no webhook."""
    from .seeding import sent_digest

    results = []
    secret, provider = WEBHOOK_ENV["ANYMAIL_WEBHOOK_SECRET"], WEBHOOK_ENV["WEBHOOK_PROVIDER"]
    with _chaos_webhook_settings():
        for esp, what, status, build in WEBHOOK_SAMPLES:
            people = [_reader(world.victim.topics.first(), f"hook-{esp}-{what}-{n}") for n in range(3)]
            target = people[1]

            def statuses():
                return [Subscriber.objects.get(pk=p.pk).status for p in people]

            before, world_before = statuses(), world.snapshot()
            payload = build(target.email, sent_digest(target, esp))
            if esp != provider:
                response = _post_webhook(http, esp, payload, secret)
                results.append((f"{esp} {what} event with the right secret on a {provider} deployment: 404, nobody changes",
                                response.status == 404 and statuses() == before))
                continue
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
        forged = _mailgun_event("complained", target.email, sent_digest(target, "mailgun"))
        forged["signature"]["signature"] = "0" * 64
        response = _post_webhook(http, "mailgun", forged, secret)
        target.refresh_from_db()
        results.append(("mailgun event with the right secret but a forged signature is refused",
                        response.status in (400, 401, 403) and target.status == Subscriber.Status.ACTIVE))
    return results


CASES += [case_scraped_xss_everywhere, case_view_in_browser_links, case_webhooks]


# --- Issue 8: the subscriber-facing flows --------------------------------------------------------
# These count what the site mailed with `http.mail_to(address)`: the plain-text bodies of every
# email sent to that address once the queued work is done (the test client's outbox, or the
# SMTP sink behind the real worker).

MALFORMED_TOKENS = ["%C2%B2.x", "%C2%B2", "1%C2%B2.abc", "%D9%A3.abc", "%EF%BC%91.abc", "1.%C3%A9:x:y"]
QUOTED_COMMA = '"victim@target.org,x"@attacker.example'


def _signup_link(http, email: str) -> str:
    """Sign `email` up through the form; the path of the confirmation link in the email it got."""
    import re

    http.request("POST", "/", data=signup_data(email), csrf=True)
    [*_, text] = http.mail_to(email) or [""]
    found = re.findall(r"https?://\S+?(/confirm/[^/\s]+/)", text)
    return found[-1] if found else "/confirm/no-email-arrived/"


def _aged(confirm_path: str, days: float) -> str:
    """The same confirmation link as if it had been signed `days` days ago."""
    token = confirm_path.rstrip("/").rsplit("/", 1)[-1]
    subscriber, data = tokens.read_token(token, tokens.CONFIRM)
    with mock.patch("time.time", return_value=time.time() - days * 86400):
        return f"/confirm/{tokens.make_token(subscriber, tokens.CONFIRM, data)}/"


def case_confirm_link_replay(http, world):
    """A confirmation link works once, and never brings back an address that unsubscribed,
    bounced or complained."""
    from subscriptions import actions

    results = []
    for leave in ("unsubscribe", Subscriber.Status.BOUNCED, Subscriber.Status.COMPLAINED):
        email = f"replay-{leave}-{_tag()}@example.org"
        confirm = _signup_link(http, email)
        first = http.request("POST", confirm, csrf=True)
        again = http.request("POST", confirm, csrf=True)
        subscriber = Subscriber.objects.get(email=email)
        results.append((f"a confirmation link confirms once, then answers 400 ({leave} run)",
                        first.status == 200 and again.status == 400 and subscriber.status == Subscriber.Status.ACTIVE))
        if leave == "unsubscribe":
            http.request("POST", _path(tokens.unsubscribe_url(subscriber)))
        else:
            actions.suppress(subscriber, leave, actions.SYSTEM)
        subscriber.refresh_from_db()
        left_as, events = subscriber.status, subscriber.consent_events.count()
        replay = [http.request(method, confirm, csrf=True) for method in ("GET", "POST")]
        subscriber.refresh_from_db()
        results.append((f"the used confirmation link replayed after {leave} is refused, the address stays {left_as}",
                        [r.status for r in replay] == [400, 400] and subscriber.status == left_as != Subscriber.Status.ACTIVE
                        and subscriber.consent_events.count() == events))
    return results


def case_resend_limits(http, world):
    """"Send me a new link" honours a maximum age and never mails a suppressed address."""
    from subscriptions import actions

    results = []
    email = f"resend-{_tag()}@example.org"
    link = _signup_link(http, email)
    mailed = len(http.mail_to(email))
    response = http.request("POST", _aged(link, 8) + "resend/", csrf=True)
    results.append(("resend with an 8-day-old link of a pending sign-up sends a fresh link (control)",
                    response.status == 200 and len(http.mail_to(email)) == mailed + 1))
    mailed += 1
    too_old = _aged(link, 31)
    page = http.request("GET", too_old)
    response = http.request("POST", too_old + "resend/", csrf=True)
    results.append(("a 31-day-old confirmation link offers no resend, and resend with it sends nothing",
                    page.status == 410 and "Send me a new link" not in page.body and response.status in (400, 410)
                    and len(http.mail_to(email)) == mailed))
    for status in (Subscriber.Status.BOUNCED, Subscriber.Status.COMPLAINED):
        email = f"resend-{status}-{_tag()}@example.org"
        link = _signup_link(http, email)
        actions.suppress(Subscriber.objects.get(email=email), status, actions.SYSTEM)
        mailed = len(http.mail_to(email))
        response = http.request("POST", _aged(link, 8) + "resend/", csrf=True)
        results.append((f"resend for a {status} address sends nothing",
                        response.status in (200, 400, 410) and len(http.mail_to(email)) == mailed
                        and Subscriber.objects.get(email=email).status == status))
    return results


def case_signup_mail_limits(http, world):
    """Sign-ups answer alike for every address; a bounced or complained address is mailed
    nothing; one address gets at most 3 emails a day however many IPs ask."""
    results, pages = [], {}
    for status in (None, Subscriber.Status.PENDING, Subscriber.Status.ACTIVE, Subscriber.Status.UNSUBSCRIBED,
                   Subscriber.Status.BOUNCED, Subscriber.Status.COMPLAINED):
        email = f"state-{status or 'new'}-{_tag()}@example.org"
        if status:
            Subscriber.objects.create(email=email, status=status).topics.set(Topic.objects.filter(slug="agents"))
        response = http.request("POST", "/", data=signup_data(email), csrf=True)
        pages[status] = (response.status, response.body.replace(email, "EMAIL"))
        if status in (Subscriber.Status.BOUNCED, Subscriber.Status.COMPLAINED):
            results.append((f"sign-up of a {status} address sends it nothing and changes nothing",
                            http.mail_to(email) == [] and Subscriber.objects.get(email=email).status == status))
    results.append(("the sign-up answer is the same for new, pending, active, unsubscribed, bounced and complained addresses",
                    len(set(pages.values())) == 1 and pages[None][0] == SIGNUP_ACCEPTED))
    for status in (None, Subscriber.Status.ACTIVE):
        email = f"many-ips-{status or 'new'}-{_tag()}@example.org"
        if status:
            Subscriber.objects.create(email=email, status=status).topics.set(Topic.objects.filter(slug="agents"))
        statuses = {http.request("POST", "/", data=signup_data(email), csrf=True, source_ip=f"127.0.3.{n % 3 + 1}").status
                    for n in range(30)}
        sent = len(http.mail_to(email))
        results.append((f"30 sign-ups of one {status or 'new'} address from 3 IPs: all accepted alike, {sent} emails (at most 3)",
                        statuses == {SIGNUP_ACCEPTED} and 1 <= sent <= 3))
    return results


def case_unsubscribe_answer_and_web_copy(http, world):
    """An old unsubscribe link (after "Revoke preference links") reaches no preferences page;
    a web copy carries no personal links; an expired web copy link is refused."""
    from .links import personal_links

    results = []
    reader = _reader(Topic.objects.filter(active=True).first(), "unsub-answer")
    old_unsubscribe = _path(tokens.unsubscribe_url(reader))
    reader.revoke_links()
    shown = http.request("GET", old_unsubscribe)
    done = http.request("POST", old_unsubscribe)
    results.append(("an old unsubscribe link still unsubscribes, and neither its page nor its answer holds a working link",
                    shown.status == done.status == 200 and personal_links(shown.body) == personal_links(done.body) == []
                    and Subscriber.objects.get(pk=reader.pk).status == Subscriber.Status.UNSUBSCRIBED))
    response = http.request("POST", "/preferences/", data={"email": reader.email}, csrf=True)
    mails = http.mail_to(reader.email)
    results.append(("\"email me a link to my preferences\" mails the link to the address itself",
                    response.status == 200 and len(mails) == 1 and "/preferences/" in mails[0]))

    marker = f"Web copy {_tag()}"
    delivery = _sent_delivery(_reader(Topic.objects.filter(active=True).first(), "web-copy"), marker)
    view = tokens.make_token(delivery.subscriber, tokens.VIEW_DIGEST, {"d": delivery.pk})
    page = http.request("GET", f"/digest/{view}/")
    results.append(("the web copy shows the digest with no preferences, unsubscribe or view link in it",
                    page.status == 200 and marker in page.body and personal_links(page.body) == []))
    with mock.patch("time.time", return_value=time.time() - 31 * 86400):
        expired = tokens.make_token(delivery.subscriber, tokens.VIEW_DIGEST, {"d": delivery.pk})
    page = http.request("GET", f"/digest/{expired}/")
    results.append(("a 31-day-old web copy link is refused", page.status in (400, 410) and marker not in page.body))
    return results


def case_malformed_tokens(http, world):
    """Tokens with non-ASCII digits (² passes isdigit(), then int() raised): 400 "not valid"
    on every tokened route, never a 500."""
    results = []
    for method, route in (("GET", "/preferences/{}/"), ("POST", "/preferences/{}/"), ("GET", "/unsubscribe/{}/"),
                          ("POST", "/unsubscribe/{}/"), ("GET", "/confirm/{}/"), ("POST", "/confirm/{}/"),
                          ("POST", "/confirm/{}/resend/"), ("GET", "/digest/{}/")):
        answers = []
        for token in MALFORMED_TOKENS:
            before = world.snapshot()
            response = http.request(method, route.format(token), csrf=True)
            answers.append(response.status == 400 and "not valid" in response.body and world.snapshot() == before)
        results.append((f"{method} {route.format('<non-ASCII digits>')}: 400 \"not valid\" for all {len(answers)} tokens", all(answers)))
    return results


def case_quoted_comma_address(http, world):
    """An address whose quoted local part holds a comma (or any quoted local part, angle
    brackets, non-ASCII before the @) is refused at sign-up: nothing stored, nothing mailed."""
    results = []
    for value in (QUOTED_COMMA, '"victim"@target.org', "Victim <victim@target.org>", "j\u00f6rg@target.org", "a,b@target.org"):
        count = Subscriber.objects.count()
        response = http.request("POST", "/", data=signup_data(value), csrf=True)
        results.append((f"sign-up of {value!r} refused with a message, nothing stored or mailed",
                        response.status == 400 and "does not look like an email" in response.body
                        and Subscriber.objects.count() == count and http.mail_to(value) == [] and http.mail_to("victim@target.org") == []))
    return results


CASES += [case_confirm_link_replay, case_resend_limits, case_signup_mail_limits, case_unsubscribe_answer_and_web_copy,
          case_malformed_tokens, case_quoted_comma_address]


def case_webhook_forgeries(http, world):
    """Authenticated-looking Mailgun calls that must still change nobody: a year-old signature
    on a swapped recipient, a replayed token, an event for a message never sent to that address."""
    from newsletter.models import Delivery
    from .seeding import sent_digest

    secret = WEBHOOK_ENV["ANYMAIL_WEBHOOK_SECRET"]
    if WEBHOOK_ENV["WEBHOOK_PROVIDER"] != "mailgun":
        return [("the webhook forgeries attack a Mailgun deployment (WEBHOOK_ENV)", False)]
    topic = world.victim.topics.first()
    results = []
    with _chaos_webhook_settings():
        # A complaint signed a year ago, its recipient swapped for a reader who got that message.
        old_reader, victim = _reader(topic, "hook-old"), _reader(topic, "hook-swapped")
        message_id = sent_digest(old_reader, "mailgun")
        sent_digest(victim, "mailgun")  # in the same batch call: Mailgun gives its recipients one id
        Delivery.objects.filter(subscriber=victim).update(provider_message_id=f"<{message_id}>")
        old = _mailgun_event("complained", victim.email, message_id, signed_at=time.time() - 365 * 86400)
        response = _post_webhook(http, "mailgun", old, secret)
        victim.refresh_from_db()
        results.append(("mailgun: a year-old signature with a swapped recipient is refused, nobody changes",
                        response.status == 400 and victim.status == Subscriber.Status.ACTIVE))

        # A fresh call is taken once; its token again (same body, or another reader's) is refused.
        first, second = _reader(topic, "hook-first"), _reader(topic, "hook-replayed")
        fresh = _mailgun_event("delivered", first.email, sent_digest(first, "mailgun"))
        accepted = _post_webhook(http, "mailgun", fresh, secret)
        again = _post_webhook(http, "mailgun", fresh, secret)
        replayed = _mailgun_event("complained", second.email, sent_digest(second, "mailgun"))
        replayed["signature"] = fresh["signature"]
        response = _post_webhook(http, "mailgun", replayed, secret)
        second.refresh_from_db()
        results.append(("mailgun: a replayed token is refused, with its own body or another",
                        accepted.status == 200 and again.status == 400 and response.status == 400
                        and second.status == Subscriber.Status.ACTIVE))

        # Correctly signed and fresh, but naming another reader's message or one never sent.
        target, other = _reader(topic, "hook-not-sent"), _reader(topic, "hook-other")
        sent_digest(target, "mailgun")
        before = world.snapshot()
        for label, message_id in (("another reader's message", sent_digest(other, "mailgun")),
                                  ("a message never sent", f"{uuid.uuid4().hex}@mg.example.org")):
            response = _post_webhook(http, "mailgun", _mailgun_event("complained", target.email, message_id), secret)
            target.refresh_from_db()
            results.append((f"mailgun: a complaint naming {label} suppresses nobody",
                            response.status == 200 and target.status == Subscriber.Status.ACTIVE
                            and not target.consent_events.exists() and world.snapshot() == before))
    return results


def _staff_session(*codenames) -> dict:
    """The session cookie of a new staff member (not a superuser) holding these permissions."""
    from django.conf import settings
    from django.contrib.auth.models import Permission, User
    from django.test import Client

    user = User.objects.create_user(f"staff-{_tag()}", password=uuid.uuid4().hex, is_staff=True)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="subscriptions", codename__in=codenames))
    client = Client()
    client.force_login(user)
    return {settings.SESSION_COOKIE_NAME: client.cookies[settings.SESSION_COOKIE_NAME].value}


def case_view_only_staff(http, world):
    """Staff who may only view subscribers: every changing admin action is refused, and the
    digest preview shows no working link of the reader's."""
    from .links import working_tokens_in

    results = []
    viewer = _staff_session("view_subscriber")
    changelist = "/admin/subscriptions/subscriber/"
    for action in ("unsubscribe_selected", "pause_selected", "resume_selected", "revoke_links"):
        before = world.snapshot()
        response = http.request("POST", changelist, data={"action": action, "_selected_action": [world.victim.pk, world.other.pk],
                                                          "index": 0}, cookies=viewer, csrf=True)
        results.append((f"view-only staff: the {action} action is refused, nobody changes",
                        response.status in (200, 302, 403) and world.snapshot() == before))
    # The same request from staff who may change subscribers works (so the refusal above is the permission).
    control = _reader(world.victim.topics.first(), "staff-control")
    editor = _staff_session("view_subscriber", "change_subscriber")
    http.request("POST", changelist, data={"action": "pause_selected", "_selected_action": [control.pk], "index": 0},
                 cookies=editor, csrf=True)
    control.refresh_from_db()
    results.append(("staff with change permission can run the same action", control.paused))

    _hostile_run(world.victim.topics.first())  # something new to preview
    page = http.request("GET", f"/admin/newsletter/delivery/preview/{world.victim.pk}/", cookies=viewer)
    results.append(("view-only staff: the digest preview shows the reader's links redacted, none that works",
                     page.status == 200 and "preferences/REDACTED-IN-PREVIEW/" in page.body
                     and "unsubscribe/REDACTED-IN-PREVIEW/" in page.body and not working_tokens_in(page.body, world.victim)))
    return results


def case_security_errors_do_not_flood_the_admins(http, world):
    """Forged Host headers and wrong webhook passwords are refused; the admins get no mail for
    the first and at most one an hour for the second, however many arrive."""
    from django.test import override_settings


    results = []
    # (gunicorn has the same ADMINS and ALLOWED_HOSTS from its environment)
    with override_settings(ADMINS=[("Admin", ADMIN_EMAIL)], ALLOWED_HOSTS=["testserver", "127.0.0.1", "localhost"]), \
            _chaos_webhook_settings():
        before = len(http.mail_to(ADMIN_EMAIL))
        answers = [http.request("GET", "/", headers={"Host": f"attacker-{n}.example"}).status for n in range(10)]
        after_hosts = len(http.mail_to(ADMIN_EMAIL))
        results.append(("10 requests with forged Host headers: each 400, no mail to the admins",
                        answers == [400] * 10 and after_hosts == before))
        target = _reader(world.victim.topics.first(), "hook-wrong-password")
        payload = _mailgun_event("complained", target.email, "never-sent@mg.example.org")
        answers = [_post_webhook(http, WEBHOOK_ENV["WEBHOOK_PROVIDER"], payload, "hostile:not-the-secret").status for _ in range(10)]
        results.append(("10 webhook calls with a wrong password: each 400, at most one mail to the admins",
                        answers == [400] * 10 and len(http.mail_to(ADMIN_EMAIL)) - after_hosts <= 1))
    return results


CASES += [case_webhook_forgeries, case_view_only_staff, case_security_errors_do_not_flood_the_admins]


# --- Issue 8: proxy headers and security headers ------------------------------------------------
# Both runners start the site with the default TRUSTED_PROXY_COUNT=0 (exposed directly), so
# X-Forwarded-For is only the client's claim here. How a configured proxy chain is read
# (the Nth entry from the right) needs a server started with that count: tests/test_client_ip.py.

FORWARDED_FOR_VARIANTS = {
    "missing": None,
    "empty": "",
    "two words, 'a, b'": "a, b",
    "'unknown'": "unknown",
    "a spoofed address": "203.0.113.66",
    "a spoofed chain": "203.0.113.66, 198.51.100.9",
    "8 kB of addresses and junk": "192.0.2.1, " * 700 + "x",
}


def _signups_counted_for(ip: str) -> tuple[int, int]:
    """(sign-ups the rate limiter has counted for `ip` in its current window, that window's end)."""
    from django.conf import settings
    from django.test import RequestFactory
    from django_ratelimit.core import get_usage

    request = RequestFactory().post("/", REMOTE_ADDR=ip)
    usage = get_usage(request, group="signup", key="ip", rate=settings.SIGNUP_RATE_LIMIT, method="POST")
    return usage["count"], round(time.time() + usage["time_left"])


def case_forwarded_for_headers(http, world):
    """X-Forwarded-For a client made up: never a 500, and neither the consent log nor the
    sign-up rate limit believes it (both count the connecting address)."""
    source = f"127.0.3.{uuid.uuid4().int % 250 + 1}"
    topic = world.victim.topics.first()
    results = []
    counted_before, window_before = _signups_counted_for(source)
    for name, value in FORWARDED_FOR_VARIANTS.items():
        headers = {} if value is None else {"X-Forwarded-For": value}
        reader = _reader(topic, "forwarded")
        paused = http.request("POST", _path(tokens.preferences_url(reader)), data={"action": "pause"}, csrf=True,
                              source_ip=source, headers=headers)
        event = reader.consent_events.filter(kind=ConsentEvent.Kind.PAUSE).first()
        results.append((f"X-Forwarded-For {name}: the consent log records the connecting address",
                        paused.status == 302 and event is not None and event.ip_address == source))
        signup = http.request("POST", "/", data=signup_data(f"forwarded-{_tag()}@example.org"), csrf=True,
                              source_ip=source, headers=headers)
        results.append((f"X-Forwarded-For {name}: sign-up is accepted, not a 500", signup.status == SIGNUP_ACCEPTED))
    counted_after, window_after = _signups_counted_for(source)
    sent = len(FORWARDED_FOR_VARIANTS)
    # If the limiter's window turned meanwhile, it has counted only the sign-ups since.
    counted = counted_after - counted_before if window_after == window_before else None
    results.append((f"all {sent} sign-ups with made-up X-Forwarded-For count against the connecting address",
                    counted == sent if counted is not None else 0 < counted_after <= sent))
    return results


def _csp(response) -> dict[str, str]:
    policy = next((v for k, v in response.headers.items() if k.lower() == "content-security-policy"), "")
    return {part.split()[0]: " ".join(part.split()[1:]) for part in policy.split(";") if part.strip()}


def case_content_security_policy(http, world):
    """Every public page forbids inline and foreign scripts, foreign form targets, <base> and
    framing; the admin too allows only its own scripts."""
    reader = _reader(world.victim.topics.first(), "csp")
    confirm = tokens.make_token(world.pending, tokens.CONFIRM, {"topics": ["agents"], "frequency": "daily"})
    pages = [("GET", "/"), ("GET", _path(tokens.preferences_url(reader))), ("GET", _path(tokens.unsubscribe_url(reader))),
             ("GET", f"/confirm/{confirm}/"), ("GET", "/preferences/1.forged/"), ("GET", "/no-such-page/"),
             ("POST", _path(tokens.unsubscribe_url(reader)))]
    results = []
    for method, path in pages:
        response = http.request(method, path, csrf=True)
        policy = _csp(response)
        results.append((f"{method} {path.split('/')[1] or 'sign-up'} page ({response.status}): CSP with only our own scripts, no framing or foreign forms",
                        policy.get("default-src") == "'none'" and policy.get("script-src") == "'self'" and policy.get("frame-ancestors") == "'none'"
                        and policy.get("form-action") == "'self'" and policy.get("base-uri") == "'none'"))
    admin = _csp(http.request("GET", "/admin/login/"))
    results.append(("the admin runs only its own scripts", admin.get("script-src") == "'self'" and admin.get("frame-ancestors") == "'none'"))
    return results


CASES += [case_forwarded_for_headers, case_content_security_policy]


# --- Merge-field forgery and the scraper's redirects (issue 8, findings 1 and 12) -------------
# Scraped URLs and text carrying the merge syntax of both batch providers, in any case, sent
# through the real pipeline to the tests' fake Mailgun and fake SendGrid (both substitute
# whatever the case); a githubRepo that is not a GitHub repository; a redirect off the host.

FORGED_URLS = [
    "https://attacker.example/collect?p=%recipient.preferences_url%",  # Mailgun, as documented
    "https://attacker.example/collect?u=%RECIPIENT.UNSUBSCRIBE_URL%",  # in upper case
    "https://github.com/owner/repo?v=%Recipient.View_Url%",  # on GitHub itself
    "https://attacker.example/%recipient_email%/%UNSUBSCRIBE_URL%",  # Mailgun's own variables
    "https://attacker.example/-preferences_url-/{{unsubscribe_url}}",  # SendGrid -key- and {{ }}
    "https://attacker.example/-PREFERENCES_URL-/{{ UNSUBSCRIBE_URL }}",
]
FORGED_TEXT = "%RECIPIENT.PREFERENCES_URL% -UNSUBSCRIBE_URL- {{view_url}} %recipient.h:List-Unsubscribe%"


def _good_run_of(topic, papers: list[dict]):
    """A good, newest scrape run of these papers, stored as given (whatever the parser would
    allow), each scored high for `topic`."""
    import random

    from newsletter.models import Paper

    from .seeding import make_scrape

    taken = set(Paper.objects.values_list("arxiv_id", flat=True))
    ids = []
    while len(ids) < len(papers):  # new papers, never ones stored before
        arxiv_id = f"2611.{random.randint(10000, 99999)}"
        if arxiv_id not in taken and arxiv_id not in ids:
            ids.append(arxiv_id)
    return make_scrape([{"arxiv_id": arxiv_id, "upvotes": 100 - rank, **fields, "topics": {topic.slug: 99.0}}
                        for rank, (arxiv_id, fields) in enumerate(zip(ids, papers), start=1)], parser="props")


def _through_the_parser(**paper_fields) -> dict:
    """What the parser stores of one API item with these fields."""
    import json

    from newsletter.sources.huggingface import parse_api

    item = {"paper": {"id": "2611.00001", "title": "A paper", "upvotes": 1, **paper_fields}}
    return parse_api(json.dumps([item])).papers[0].fields


def case_forged_merge_keys_in_scraped_urls(http, world):
    """Merge keys of Mailgun, SendGrid and Postmark, any case, in githubRepo, projectPage and the
    text: the parser refuses the links and makes the text inert; rows stored anyway (an older
    parser, a hand edit) reach every batch provider without a key, so no reader's links go
    anywhere else."""
    from django.conf import settings

    from .fake_providers import FakeMailgun, FakePostmark, FakeSendGrid

    results = []
    stored = [_through_the_parser(githubRepo=url, projectPage=url) for url in FORGED_URLS]
    results.append(("parser: no forged githubRepo or projectPage is stored",
                    all(f["github_repo"] == "" and f["project_page"] == "" for f in stored)))
    text = _through_the_parser(title=FORGED_TEXT, ai_summary=FORGED_TEXT)
    results.append(("parser: merge syntax in scraped text is stored inert, the text unchanged to a reader",
                    text["title"] != FORGED_TEXT and text["title"].replace("\u200b", "") == FORGED_TEXT))

    topic = world.victim.topics.first()
    _good_run_of(topic, [dict(title=f"Paper {n} {FORGED_TEXT}", ai_summary=FORGED_TEXT, authors=[FORGED_TEXT],
                              github_repo=url, project_page=url) for n, url in enumerate(FORGED_URLS)])
    for name, fake_class, backend in (("Mailgun", FakeMailgun, "anymail.backends.mailgun.EmailBackend"),
                                      ("SendGrid", FakeSendGrid, "anymail.backends.sendgrid.EmailBackend"),
                                      ("Postmark", FakePostmark, "anymail.backends.postmark.EmailBackend")):
        reader = _reader(topic, f"forged-{name.lower()}")
        with fake_class() as fake:
            prefix = f"{name.upper()}_"
            anymail = {**settings.ANYMAIL, **{k: v for k, v in fake.env().items() if k.startswith(prefix)}}
            delivery, _ = _send_one(reader, EMAIL_BACKEND=backend, ANYMAIL=anymail)
        results.append((f"{name}: the digest was accepted for its reader only",
                        delivery.status == "sent" and [m.to for m in fake.accepted] == [reader.email]))
        if not fake.accepted:
            continue
        copy = fake.accepted[0]
        everything = "\n".join([copy.subject, copy.text, copy.html, *copy.headers.values()])
        own_links = [tokens.make_token(reader, purpose) for purpose in (tokens.PREFERENCES, tokens.UNSUBSCRIBE)]
        results += [
            (f"{name}: no link to the attacker's host", "attacker.example" not in everything),
            (f"{name}: the GitHub link with a key in it is dropped", "github.com/owner/repo" not in everything),
            (f"{name}: the reader's own links only where the template puts them (never in the subject)",
             not any(link in copy.subject for link in own_links) and settings.SITE_URL not in copy.subject),
            (f"{name}: the forged keys are shown as written in both parts, and the subject holds none",
             "PREFERENCES_URL" not in copy.subject.upper() and SHORT_SUBJECT.match(copy.subject) is not None
             and all(FORGED_TEXT in part.replace("\u200b", "") for part in (copy.text, copy.html))),
        ]
    return results


def case_github_repo_elsewhere(http, world):
    """A githubRepo that is not https://github.com/<owner>/<repo>: the parser stores none, and
    a stored one is not linked in the digest."""
    elsewhere = ["https://gitlab.com/owner/repo", "https://github.com.attacker.example/owner/repo",
                 "https://user:pw@github.com/owner/repo", "https://gist.github.com/owner/0123abcd",
                 "https://github.com/owner", "http://attacker.example/owner/repo", "javascript:alert(1)//github.com/o/r"]
    results = [(f"parser: githubRepo {url} is not stored", _through_the_parser(githubRepo=url)["github_repo"] == "")
               for url in elsewhere]
    results.append(("parser: a GitHub repository link is normalised to https://github.com/<owner>/<repo>",
                    _through_the_parser(githubRepo="http://www.github.com/Owner/Repo.git/tree/main")["github_repo"]
                    == "https://github.com/Owner/Repo"))

    topic = world.victim.topics.first()
    _good_run_of(topic, [dict(title=f"Elsewhere {n}", github_repo=url) for n, url in enumerate(elsewhere)])
    reader = _reader(topic, "github-elsewhere")
    delivery, sink = _send_one_over_smtp(reader)
    message = sink.messages[0]["message"] if sink.messages else None
    html = message.get_body(preferencelist=("html",)).get_content() if message else ""
    text = message.get_body(preferencelist=("plain",)).get_content() if message else ""
    results.append(("digest: sent, with no GitHub link to a stored githubRepo that is not a repository on github.com",
                    delivery.status == "sent" and "Elsewhere 0" in text and ">GitHub<" not in html and "GitHub:" not in text
                    and not any(url.split("//")[-1].split("/")[0] in html for url in elsewhere[:4])))
    return results


def case_scraper_redirect_off_host(http, world):
    """The scraped page redirects to another host: nothing is fetched there (not even its
    robots.txt), the run fails naming the host, and neither the run nor the admins' mail
    quotes what a response said. Production fetches only https."""
    from django.core import mail
    from django.test import override_settings

    from newsletter.models import ScrapeRun
    from newsletter.scraping.run import scrape_url
    from .hf_server import HFServer, Reply

    secret = f"SECRET-{_tag()}"
    source, other = HFServer().start(), HFServer(host="127.0.0.2").start()
    results = []
    try:
        source.route("/papers/trending", Reply(status=302, headers={"Location": other.url("/papers/trending")}))
        other.route("/papers/trending", Reply.html(f'<article><h3><a href="/papers/{secret}">{secret}</a></h3><div>7</div></article>'))
        scrape = dict(SCRAPE_SOURCE_URL=source.url("/papers/trending"), SCRAPE_ALLOWED_HOSTS=[], SCRAPE_REQUIRE_HTTPS=False,
                      SCRAPE_RETRIES=0, ADMINS=[("Ops", "ops@example.org")], EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend")
        with override_settings(**scrape):
            mail.outbox = []
            run = scrape_url()
            alerts = list(mail.outbox)
            with override_settings(SCRAPE_REQUIRE_HTTPS=True):
                plain = scrape_url()
        results += [
            ("scraper: a redirect to another host is not followed (nothing asked of that host)",
             run.status == ScrapeRun.Status.FAILED and other.requests == []),
            ("scraper: the failed run names the host it was sent to", "127.0.0.2" in run.error),
            ("scraper: no response body in the run's error or the admins' alert",
             len(alerts) == 1 and secret not in run.error and all(secret not in m.body + m.subject for m in alerts)),
            ("scraper: with SCRAPE_REQUIRE_HTTPS (production) a plain-http source is not fetched",
             plain.status == ScrapeRun.Status.FAILED and "only https" in plain.error and len(source.requests) == 2),
        ]
    finally:
        source.stop()
        other.stop()
    return results


CASES += [case_forged_merge_keys_in_scraped_urls, case_github_repo_elsewhere, case_scraper_redirect_off_host]


def case_operator_pages(http, world):
    """The dashboard, the import page and "Send a test digest": scraped or typed markup comes
    back as text, and staff without the change permission can neither import nor send."""
    from datetime import timedelta

    from django.utils import timezone

    from newsletter.models import Delivery, ScrapeRun

    results = []
    topic = world.victim.topics.first()
    Topic.objects.filter(pk=topic.pk).update(name=f"Topic {XSS}")
    ScrapeRun.objects.create(source=f"https://huggingface.co/{XSS}", status=ScrapeRun.Status.FAILED, error=XSS,
                             started_at=timezone.now() - timedelta(hours=1))
    _hostile_run(topic)  # newer: a digest can be built

    anonymous = http.request("GET", "/admin/")
    results.append(("anonymous: the dashboard sends to the login page", anonymous.status == 302 and "/admin/login/" in anonymous.headers.get("Location", "")))
    editor = _staff_session("view_subscriber", "change_subscriber", "view_topic", "view_consentevent")
    board = http.request("GET", "/admin/", cookies=editor)
    results.append(("dashboard: a hostile topic name is shown as text in the charts",
                    board.status == 200 and 'id="panel-topics"' in board.body and "Topic &quot;&gt;&lt;script" in board.body
                    and not has_raw_markup(board.body)))

    viewer = _staff_session("view_subscriber")
    page = http.request("POST", "/admin/subscriptions/subscriber/import/", data={"mode": "double-opt-in"}, cookies=viewer, csrf=True)
    results.append(("view-only staff: the import page is refused", page.status == 403))

    send = f"/admin/newsletter/delivery/preview/{world.victim.pk}/send-test/"
    refused = http.request("POST", send, data={"to": "qa@example.org"}, cookies=viewer, csrf=True)
    results.append(("view-only staff: no test digest is sent", refused.status == 403 and not http.mail_to("qa@example.org")))
    forged = http.request("POST", send, data={"to": "qa@example.org\r\nBcc: thief@example.net"}, cookies=editor, csrf=True)
    results.append(("a header break in the test address is refused, nothing is sent",
                    forged.status == 200 and not http.mail_to("thief@example.net") and not http.mail_to("qa@example.org")))
    no_token = http.request("POST", send, data={"to": "qa@example.org"}, cookies=editor, csrf=False)
    results.append(("a test digest needs the CSRF token", no_token.status == 403 and not http.mail_to("qa@example.org")))
    # Over real HTTP every case shares one world: earlier cases may have sent the victim digests.
    deliveries_before = Delivery.objects.filter(subscriber=world.victim).count()
    sent = http.request("POST", send, data={"to": "qa@example.org"}, cookies=editor, csrf=True)
    [text] = http.mail_to("qa@example.org") or [""]
    results.append(("staff who may change subscribers send one test digest; it records no delivery",
                    sent.status == 302 and "Agents" in text
                    and Delivery.objects.filter(subscriber=world.victim).count() == deliveries_before))
    return results


CASES += [case_operator_pages]


# --- The public archive and feeds (issue 12) ---------------------------------------------------
# The hostile paper of _hostile_run and a second one with control characters, forged merge keys
# and forged links, on the archive's pages, in its Atom feeds and in the sign-up page's sample.

# Bell, escape, vertical tab, form feed, unit separator, delete, line separator, right-to-left
# override, byte-order mark: nothing a page or XML 1.0 (the feeds) should carry.
CONTROL_CHARACTERS = "\x07\x1b\x0b\x0c\x1f\x7f\u2028\u202e\ufeff"


def hostile_archive_run(topic):
    """A good, newest scrape run of two hostile papers in `topic`: (run, [papers])."""
    from newsletter.models import Paper, PaperRank, PaperTopicScore

    run, first = _hostile_run(topic)
    second = Paper.objects.create(
        arxiv_id=f"{first.arxiv_id}v2",
        title=f"Control{CONTROL_CHARACTERS}characters \x1b[31mred {FORGED_TEXT}",
        ai_summary=f"Summary{CONTROL_CHARACTERS}{MERGE_FORGERY}",
        authors=[f"Eve{CONTROL_CHARACTERS}", {"name": FORGED_TEXT}],
        organization=f"Org{CONTROL_CHARACTERS}",
        github_repo=FORGED_URLS[2],
        project_page=FORGED_URLS[0],
        upvotes=3,
    )
    PaperRank.objects.create(run=run, paper=second, rank=2, upvotes=3)
    PaperTopicScore.objects.create(paper=second, topic=topic, score=98.0, matched=[XSS])
    return run, [first, second]


def link_targets(body: str) -> list[str]:
    import re

    return re.findall(r"""(?:href|src)\s*=\s*["']([^"']*)""", body, re.I)


def inert_scraped_text(body: str) -> bool:
    """No scraped markup, working merge key, control character or forged link in `body`."""
    return (not has_raw_markup(body) and _no_script_links(body) and "attacker.example" not in body
            and MERGE_FORGERY not in body and "%\u200brecipient.unsubscribe_url%" in body
            and not any(ch in body for ch in CONTROL_CHARACTERS))


def case_scraped_fields_in_archive_and_feeds(http, world):
    """Every scraped field of the hostile papers, on every archive page, in both feeds and in
    the sign-up page's sample: escaped, merge keys inert, no control character, https links only."""
    from xml.etree import ElementTree

    from django.conf import settings
    from django.utils import timezone

    results = []
    topic = world.victim.topics.first()
    run, papers = hostile_archive_run(topic)
    pages = {"the index of days": "/archive/", "the day's page": f"/archive/{timezone.localdate(run.started_at):%Y-%m-%d}/",
             "the topic's page": f"/topics/{topic.slug}/", "the sign-up page's sample": "/"}
    for name, path in pages.items():
        page = http.request("GET", path)
        # (Our own absolute links, such as the feeds announced in <head>, start with SITE_URL.)
        ours_or_https = all(t.startswith(("/", "?", "#", "https://", f"{settings.SITE_URL}/")) for t in link_targets(page.body))
        results.append((f"archive: {name} shows the hostile papers escaped, inert, with https links only",
                        page.status == 200 and "&lt;script&gt;" in page.body and inert_scraped_text(page.body)
                        and ours_or_https))
    atom = "{http://www.w3.org/2005/Atom}"
    for name, path in (("all papers", "/feeds/all.atom"), ("the topic", f"/feeds/topics/{topic.slug}.atom")):
        feed = http.request("GET", path)
        try:
            entries = ElementTree.fromstring(feed.body.encode()).findall(f"{atom}entry")
        except ElementTree.ParseError:
            entries = []
        by_id = {entry.findtext(f"{atom}id"): entry for entry in entries}
        hostile = [by_id.get(f"https://arxiv.org/abs/{paper.arxiv_id}") for paper in papers]
        # Titles are Atom text (markup in them is shown as text); summaries are escaped HTML.
        summaries = [entry.findtext(f"{atom}summary") or "" for entry in hostile if entry is not None]
        results.append((f"feed of {name}: well-formed XML holding both hostile papers, nothing raw or working in it",
                        feed.status == 200 and len(summaries) == 2 and inert_scraped_text(feed.body)))
        results.append((f"feed of {name}: each entry's HTML has the markup escaped and https links only",
                        len(summaries) == 2 and "&lt;script&gt;" in summaries[0]
                        and all(not has_raw_markup(s) and _no_script_links(s) for s in summaries)
                        and all(t.startswith(("https://", f"{settings.SITE_URL}/")) for s in summaries for t in link_targets(s))))
    return results


CASES += [case_scraped_fields_in_archive_and_feeds]


# --- "More like this" / "Less like this" (issue 11) ---------------------------------------------


def case_vote_links(http, world):
    """Vote links: the reader's own link shows a button and records nothing until a POST with
    its CSRF token; forged, truncated, cross-reader and cross-paper tokens are refused on every
    vote route; bad tokens from one address are cut off (429); PUT and DELETE are refused."""
    from django.core.signing import Signer

    from newsletter.feedback import tokens as feedback_tokens
    from newsletter.models import Delivery, Paper, Vote

    results = []
    victim, other = world.victim, world.other
    sent = Delivery.objects.filter(status=Delivery.Status.SENT)  # earlier cases may have sent them today's
    mine = sent.filter(subscriber=victim).first() or _sent_delivery(victim, f"Victim's paper {_tag()}")
    theirs = sent.filter(subscriber=other).first() or _sent_delivery(other, f"Other's paper {_tag()}")
    paper = mine.content.items.first().paper
    their_paper = theirs.content.items.exclude(paper__in=mine.content.items.values("paper")).first().paper
    good = feedback_tokens.make(victim.pk, mine.pk, paper.pk)
    ids, _, signature = good.partition(":")

    def votes():
        return sorted(Vote.objects.filter(subscriber__in=[victim, other]).values_list("subscriber_id", "paper_id", "value"))

    before = votes()
    shown = http.request("GET", f"/feedback/{good}/more/", source_ip="127.0.2.200")
    results.append(("GET on a reader's own vote link shows a button and records nothing",
                    shown.status == 200 and "More like this" in shown.body and votes() == before))
    no_csrf = http.request("POST", f"/feedback/{good}/more/", data={}, source_ip="127.0.2.200")
    results.append(("a vote POST without its CSRF token is refused (403), nothing recorded", no_csrf.status == 403 and votes() == before))
    for method in ("PUT", "DELETE"):
        answer = http.request(method, f"/feedback/{good}/more/", source_ip="127.0.2.200")
        # Refused by the CSRF middleware (403) or, past it, by the view (405).
        with_csrf = http.request(method, f"/feedback/{good}/more/", csrf=True, source_ip="127.0.2.200")
        results.append((f"{method} on a vote link is refused (403 / 405)",
                        {answer.status, with_csrf.status} <= {403, 405} and votes() == before))

    variants = {
        "truncated": good[:-6],
        "tampered signature": f"{ids}:{signature[:-1]}{'A' if signature[-1] != 'A' else 'B'}",
        "the other reader's id with this signature": f"{other.pk}.{mine.pk}.{paper.pk}:{signature}",
        "this reader's token naming the other's delivery": feedback_tokens.make(victim.pk, theirs.pk, paper.pk),
        "the other reader's token naming this reader's delivery": feedback_tokens.make(other.pk, mine.pk, paper.pk),
        "a well-signed token for a paper not in the digest": feedback_tokens.make(victim.pk, mine.pk, their_paper.pk),
        "signed with another key": Signer(key="not-the-key", salt="newsletter.feedback.vote").sign(ids),
        "an unsubscribe token": tokens.make_token(victim, tokens.UNSUBSCRIBE),
        "a delivery that does not exist": feedback_tokens.make(victim.pk, Delivery.objects.order_by("-pk")[0].pk + 1000, paper.pk),
        "huge": "9" * 4000,
        "non-ASCII digits": "%C2%B2.1.1:" + signature,
    }
    for n, (name, token) in enumerate(variants.items()):
        source = f"127.0.2.{n + 1}"  # loopback (the script binds it); the per-address limit is checked below
        answers = [http.request(method, route.format(token), csrf=True, source_ip=source).status
                   for method, route in (("GET", "/feedback/{}/more/"), ("GET", "/feedback/{}/"), ("POST", "/feedback/{}/less/"),
                                         ("POST", "/feedback/{}/undo/"), ("POST", "/feedback/{}/not-interested/"))]
        results.append((f"vote routes with {name} token: 400 on each, nothing recorded", answers == [400] * 5 and votes() == before))

    prober = "127.0.2.99"
    answers = [http.request("GET", f"/feedback/{variants['tampered signature']}/", source_ip=prober).status for _ in range(31)]
    results.append(("31 bad vote tokens from one address a minute: 400s, then 429", answers[0] == 400 and answers[-1] == 429
                    and set(answers) == {400, 429} and votes() == before))

    cast = http.request("POST", f"/feedback/{good}/more/", csrf=True, source_ip="127.0.2.200")
    results.append(("the reader's own vote, posted from the page, counts once",
                    cast.status == 303 and votes() == sorted(before + [(victim.pk, paper.pk, Vote.MORE)])))
    return results


CASES += [case_vote_links]
