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
