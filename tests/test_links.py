"""Preference, unsubscribe and confirmation links: signed, revocable where they should be,
never usable for another subscriber; one-click unsubscribe per RFC 8058."""

import time
from unittest import mock

import pytest
from django.core import mail, signing
from django.test import Client

from subscriptions import actions, tokens
from subscriptions.models import ConsentEvent, Subscriber

from .helpers import email_text, links_in, make_subscriber, path_of, personal_links, preferences_path, unsubscribe_path

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice(topics):
    return make_subscriber("alice@example.org", topics=[topics["agents"], topics["robotics"]])


@pytest.fixture
def bob(topics):
    return make_subscriber("bob@example.org", topics=[topics["code"]])


def forged_variants(token: str, other) -> list[str]:
    pk, _, signed = token.partition(".")
    return [
        token[:-1] + ("A" if token[-1] != "A" else "B"),  # tampered signature
        token[: len(token) // 2],  # truncated
        f"{other.pk}.{signed}",  # someone else's id with this signature
        f"{pk}." + signing.dumps({}, salt="subscriptions.preferences"),  # signed without the secret
        "garbage",
        "",
        "99999999999999999999999.abc",
    ]


def signup_confirm_path(client, email, days_ago: float = 0, topics=("agents",)) -> str:
    """Sign `email` up (optionally as if `days_ago` days ago) and return the confirmation link
    from the email that sign-up sent. For transactional tests: the email goes out on commit."""
    before = len(mail.outbox)
    with mock.patch("time.time", return_value=time.time() - days_ago * 86400):
        response = client.post("/", {"email": email, "topics": list(topics), "frequency": "daily"})
    assert response.status_code == 303  # redirect-after-POST to the "check your inbox" page
    [message] = mail.outbox[before:]
    assert message.to == [email]
    [link] = links_in(email_text(message), "/confirm/")
    return path_of(link)


def sent_to(email) -> int:
    return sum(m.to == [email] for m in mail.outbox)


def test_preferences_page_changes_topics_and_logs(client, alice, topics):
    path = preferences_path(alice)
    page = client.get(path)
    assert page.status_code == 200 and "alice@example.org" in page.content.decode()
    response = client.post(
        path,
        {"topics": ["code", "evaluation"], "frequency": "weekly", "weekday": 4, "send_hour": 18,
         "timezone": "Europe/Berlin", "papers_per_email": 5, "action": "save"},
    )
    assert response.status_code == 302
    alice.refresh_from_db()
    assert set(alice.topics.values_list("slug", flat=True)) == {"code", "evaluation"}
    assert (alice.frequency, alice.weekday, alice.send_hour, alice.timezone, alice.papers_per_email) == ("weekly", 4, 18, "Europe/Berlin", 5)
    event = alice.consent_events.get(kind=ConsentEvent.Kind.PREFERENCES)
    assert event.details["changes"]["topics"] == {"from": ["agents", "robotics"], "to": ["code", "evaluation"]}


def test_preferences_keep_the_weekday_while_the_digest_is_daily(client, alice):
    """The weekday field is hidden for daily digests but still posts its value: that is not a
    choice the reader made, so the stored day stays (and comes back with weekly)."""
    form = {"topics": ["agents", "robotics"], "send_hour": 7, "timezone": "UTC", "papers_per_email": 10, "action": "save"}
    path = preferences_path(alice)
    assert client.post(path, {**form, "frequency": "weekly", "weekday": 4}).status_code == 302
    assert client.post(path, {**form, "frequency": "daily", "weekday": 1}).status_code == 302
    alice.refresh_from_db()
    assert (alice.frequency, alice.weekday) == ("daily", 4)
    assert client.post(path, {**form, "frequency": "weekly"}).status_code == 302  # no day sent: the stored one
    alice.refresh_from_db()
    assert (alice.frequency, alice.weekday) == ("weekly", 4)
    changes = [e.details["changes"] for e in alice.consent_events.filter(kind=ConsentEvent.Kind.PREFERENCES).order_by("id")]
    assert changes == [{"frequency": {"from": "daily", "to": "weekly"}, "weekday": {"from": 0, "to": 4}},
                       {"frequency": {"from": "weekly", "to": "daily"}},
                       {"frequency": {"from": "daily", "to": "weekly"}}]


def test_preferences_rejects_bad_values_and_changes_nothing(client, alice):
    response = client.post(
        preferences_path(alice),
        {"topics": ["nope"], "frequency": "hourly", "weekday": 9, "send_hour": 25, "timezone": "Mars/Base", "papers_per_email": 0},
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert "does not exist" in html
    alice.refresh_from_db()
    assert alice.frequency == "daily" and alice.send_hour == 7 and alice.timezone == "UTC"
    assert alice.consent_events.count() == 0


def test_pause_resume_unsubscribe_resubscribe_each_logged(client, alice):
    path = preferences_path(alice)
    for action in ("pause", "resume"):
        assert client.post(path, {"action": action}).status_code == 302
    client.post(unsubscribe_path(alice))
    alice.refresh_from_db()
    assert alice.status == Subscriber.Status.UNSUBSCRIBED
    assert client.post(path, {"action": "resubscribe"}).status_code == 302
    alice.refresh_from_db()
    assert alice.status == Subscriber.Status.ACTIVE and not alice.paused
    kinds = list(alice.consent_events.order_by("id").values_list("kind", flat=True))
    assert kinds == ["pause", "resume", "unsubscribe", "resubscribe"]


def test_forged_or_foreign_tokens_are_refused_everywhere(client, alice, bob):
    for purpose, path_for in ((tokens.PREFERENCES, preferences_path), (tokens.UNSUBSCRIBE, unsubscribe_path)):
        prefix = "/preferences/" if purpose == tokens.PREFERENCES else "/unsubscribe/"
        token = path_for(alice).removeprefix(prefix).rstrip("/")
        for bad in forged_variants(token, bob):
            if not bad:
                continue
            for method in ("get", "post"):
                response = getattr(client, method)(f"{prefix}{bad}/", {"topics": ["code"], "action": "save"})
                assert response.status_code in (400, 404), (purpose, bad, method, response.status_code)
    # A preferences token is not an unsubscribe token and vice versa.
    pref_token = preferences_path(alice).split("/")[2]
    assert client.post(f"/unsubscribe/{pref_token}/").status_code == 400
    for s in (alice, bob):
        s.refresh_from_db()
        assert s.status == Subscriber.Status.ACTIVE
    assert ConsentEvent.objects.count() == 0


def test_revoking_secret_kills_preferences_links_but_not_unsubscribe(client, alice):
    old_preferences, old_unsubscribe = preferences_path(alice), unsubscribe_path(alice)
    alice.revoke_links()
    assert client.get(old_preferences).status_code == 400
    assert client.get(preferences_path(alice)).status_code == 200
    assert client.post(old_unsubscribe).status_code == 200
    alice.refresh_from_db()
    assert alice.status == Subscriber.Status.UNSUBSCRIBED


@pytest.mark.parametrize("encoding", ["form", "multipart", "empty"])
def test_rfc8058_one_click_post(alice, bob, encoding):
    client = Client(enforce_csrf_checks=True)  # no cookie, no CSRF token, like Gmail
    path = unsubscribe_path(alice)
    if encoding == "form":
        response = client.post(path, "List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded")
    elif encoding == "multipart":
        response = client.post(path, {"List-Unsubscribe": "One-Click"})
    else:
        response = client.post(path)
    assert response.status_code == 200  # not a redirect
    alice.refresh_from_db()
    bob.refresh_from_db()
    assert alice.status == Subscriber.Status.UNSUBSCRIBED and alice.unsubscribed_at
    assert bob.status == Subscriber.Status.ACTIVE
    event = alice.consent_events.get()
    assert event.kind == "unsubscribe"
    assert event.details["method"] == ("page" if encoding == "empty" else "one-click")
    # Idempotent: again and again, 200, and no second log row.
    assert client.post(path, {"List-Unsubscribe": "One-Click"}).status_code == 200
    assert alice.consent_events.count() == 1


def test_unsubscribe_get_only_shows_a_button(client, alice):
    response = client.get(unsubscribe_path(alice))
    assert response.status_code == 200
    assert "<form method=\"post\"" in response.content.decode()
    alice.refresh_from_db()
    assert alice.status == Subscriber.Status.ACTIVE


@pytest.mark.django_db(transaction=True)
def test_expired_confirmation_offers_resend(client, topics):
    confirm = signup_confirm_path(client, "late@example.org", days_ago=8)
    page = client.get(confirm)
    assert page.status_code == 410 and "expired" in page.content.decode()
    assert client.post(confirm).status_code == 410
    pending = Subscriber.objects.get(email="late@example.org")
    assert pending.status == Subscriber.Status.PENDING
    response = client.post(f"{confirm}resend/")
    assert response.status_code == 200
    assert len(mail.outbox) == 2 and mail.outbox[1].to == ["late@example.org"]


def test_tampered_confirmation_link(client, topics):
    pending = make_subscriber("p@example.org", status=Subscriber.Status.PENDING)
    token = tokens.make_token(pending, tokens.CONFIRM, {"topics": ["agents"], "frequency": "daily"})
    # Changing the choices inside the payload breaks the signature.
    payload = signing.b64_encode(b'{"topics":["code"],"frequency":"weekly"}').decode()
    pk, _, signed = token.partition(".")
    forged = f"{pk}.{payload}:{signed.split(':', 1)[1]}"
    for bad in (forged, token[:-2], token + "x"):
        response = client.post(f"/confirm/{bad}/")
        assert response.status_code == 400
        assert "not valid" in response.content.decode()
    pending.refresh_from_db()
    assert pending.status == Subscriber.Status.PENDING


def test_resubscribe_through_signup_needs_new_confirmation(client, topics, django_capture_on_commit_callbacks):
    from django.core import mail

    from .helpers import email_text, links_in

    gone = make_subscriber("gone@example.org", status=Subscriber.Status.UNSUBSCRIBED, topics=[topics["agents"]])
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/", {"email": "gone@example.org", "topics": ["code"], "frequency": "daily"})
    gone.refresh_from_db()
    assert gone.status == Subscriber.Status.PENDING  # still receives nothing before confirmation
    link = links_in(email_text(mail.outbox[0]), "/confirm/")[0]
    client.post(path_of(link))
    gone.refresh_from_db()
    assert gone.status == Subscriber.Status.ACTIVE
    assert list(gone.topics.values_list("slug", flat=True)) == ["code"]
    assert list(gone.consent_events.order_by("id").values_list("kind", flat=True)) == ["signup", "resubscribe"]


def test_consent_log_is_append_only(alice):
    from subscriptions.actions import SYSTEM, log_event

    event = log_event(alice, ConsentEvent.Kind.ADMIN, SYSTEM, note="x")
    event.details = {"note": "rewritten"}
    with pytest.raises(ValueError):
        event.save()
    with pytest.raises(ValueError):
        event.delete()


# --- Issue 8: what an old link, a replayed link or a malformed one may still do ------------------


@pytest.mark.django_db(transaction=True)  # each request commits, so its emails go out as on the server
def test_unsubscribe_answer_offers_an_emailed_link_instead_of_a_working_one(topics):
    """Issue 8 #2: an old unsubscribe link outlives "Revoke preference links"; the page it
    answers with must not hand out a fresh preferences link."""
    alice = make_subscriber("alice@example.org", topics=[topics["agents"]])
    client = Client()
    old_unsubscribe = unsubscribe_path(alice)
    alice.revoke_links()
    response = client.post(old_unsubscribe)
    page = response.content.decode()
    assert response.status_code == 200 and "You are unsubscribed" in page
    assert personal_links(page) == [], personal_links(page)
    assert "Email me a link to my preferences" in page

    # The button mails a preferences link to the address itself.
    response = client.post("/preferences/", {"email": alice.email})
    assert response.status_code == 200 and "Check your inbox" in response.content.decode()
    assert sent_to(alice.email) == 1
    [link] = links_in(email_text(mail.outbox[-1]), "/preferences/")
    page = client.get(path_of(link))
    assert page.status_code == 200 and "Resubscribe" in page.content.decode()


@pytest.mark.django_db(transaction=True)
def test_preferences_link_request_answers_alike_and_mails_only_reachable_owners(topics):
    """The "email me a link" form says the same for every address and mails a link only to an
    active or unsubscribed owner: never to a pending, bounced or complained address."""
    statuses = {
        "nobody@example.org": None,
        "pending@example.org": Subscriber.Status.PENDING,
        "active@example.org": Subscriber.Status.ACTIVE,
        "gone@example.org": Subscriber.Status.UNSUBSCRIBED,
        "bounced@example.org": Subscriber.Status.BOUNCED,
        "complained@example.org": Subscriber.Status.COMPLAINED,
    }
    for email, status in statuses.items():
        if status:
            make_subscriber(email, status=status, topics=[topics["agents"]])
    pages = set()
    for email in statuses:
        response = Client().post("/preferences/", {"email": email})
        assert response.status_code == 200
        pages.add(response.content.decode().replace(email, "EMAIL"))
    assert len(pages) == 1
    assert {email: sent_to(email) for email in statuses} == {
        "nobody@example.org": 0, "pending@example.org": 0, "active@example.org": 1,
        "gone@example.org": 1, "bounced@example.org": 0, "complained@example.org": 0,
    }
    assert Subscriber.objects.count() == 5  # asking creates nobody
    # The form itself, and a bad address.
    assert "Email me a link to my preferences" in Client().get("/preferences/").content.decode()
    assert Client().post("/preferences/", {"email": '"a,b"@example.org'}).status_code == 400


@pytest.mark.django_db(transaction=True)
def test_confirm_link_works_once(topics):
    """Issue 8 #4: a used confirmation link is spent: POST and GET answer "not valid"."""
    client = Client()
    confirm = signup_confirm_path(client, "once@example.org")
    assert client.post(confirm).status_code == 200
    subscriber = Subscriber.objects.get(email="once@example.org")
    assert subscriber.status == Subscriber.Status.ACTIVE
    events = subscriber.consent_events.count()
    for method in ("get", "post"):
        response = getattr(client, method)(confirm)
        assert response.status_code == 400 and "not valid" in response.content.decode(), method
    assert subscriber.consent_events.count() == events


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("leave", ["unsubscribe", Subscriber.Status.BOUNCED, Subscriber.Status.COMPLAINED])
def test_replayed_confirm_link_cannot_bring_back_a_suppressed_address(topics, leave):
    """Issue 8 #4: the link that confirmed an address must not make it active again after an
    unsubscribe, a bounce or a complaint."""
    client = Client()
    confirm = signup_confirm_path(client, "replay@example.org")
    assert client.post(confirm).status_code == 200
    subscriber = Subscriber.objects.get(email="replay@example.org")
    if leave == "unsubscribe":
        assert client.post(unsubscribe_path(subscriber)).status_code == 200
    else:
        actions.suppress(subscriber, leave, actions.SYSTEM)
    subscriber.refresh_from_db()
    left_as, events = subscriber.status, subscriber.consent_events.count()
    response = client.post(confirm)
    assert response.status_code == 400 and "not valid" in response.content.decode()
    subscriber.refresh_from_db()
    assert subscriber.status == left_as and subscriber.consent_events.count() == events


@pytest.mark.django_db(transaction=True)
def test_unsubscribed_reader_signs_up_again_with_a_fresh_double_opt_in(topics):
    """Issue 8 #4: after an unsubscribe only a link from a new sign-up brings the reader back."""
    client = Client()
    first = signup_confirm_path(client, "back@example.org")
    client.post(first)
    subscriber = Subscriber.objects.get(email="back@example.org")
    client.post(unsubscribe_path(subscriber))
    second = signup_confirm_path(client, "back@example.org", topics=("code",))
    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.PENDING  # receives nothing until confirmed
    assert client.post(first).status_code == 400
    assert client.post(second).status_code == 200
    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.ACTIVE
    assert list(subscriber.topics.values_list("slug", flat=True)) == ["code"]
    kinds = list(subscriber.consent_events.order_by("id").values_list("kind", flat=True))
    assert kinds == ["signup", "confirm", "unsubscribe", "signup", "resubscribe"]


@pytest.mark.django_db(transaction=True)
def test_resend_honours_a_maximum_age(topics, settings):
    """Issue 8 #4: an expired link may ask for a fresh one, but not forever."""
    client = Client()
    too_old = signup_confirm_path(client, "slow@example.org", days_ago=31)
    expired = signup_confirm_path(client, "slow@example.org", days_ago=8)
    page = client.get(too_old)
    assert page.status_code == 410 and "Send me a new link" not in page.content.decode()
    mails = sent_to("slow@example.org")
    assert client.post(f"{too_old}resend/").status_code in (400, 410)
    assert sent_to("slow@example.org") == mails
    # Younger than that: a fresh link, which confirms.
    page = client.get(expired)
    assert page.status_code == 410 and "Send me a new link" in page.content.decode()
    assert client.post(f"{expired}resend/").status_code == 200
    assert sent_to("slow@example.org") == mails + 1
    [fresh] = links_in(email_text(mail.outbox[-1]), "/confirm/")
    assert client.post(path_of(fresh)).status_code == 200
    assert Subscriber.objects.get(email="slow@example.org").status == Subscriber.Status.ACTIVE
    assert settings.CONFIRMATION_RESEND_MAX_AGE == 30 * 86400


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("status", [Subscriber.Status.BOUNCED, Subscriber.Status.COMPLAINED])
def test_resend_never_mails_a_bounced_or_complained_address(topics, status):
    client = Client()
    expired = signup_confirm_path(client, "hurt@example.org", days_ago=8)
    subscriber = Subscriber.objects.get(email="hurt@example.org")
    actions.suppress(subscriber, status, actions.SYSTEM)
    mails = sent_to("hurt@example.org")
    response = client.post(f"{expired}resend/")
    assert response.status_code in (200, 400)
    assert sent_to("hurt@example.org") == mails
    subscriber.refresh_from_db()
    assert subscriber.status == status


# Digits that str.isdigit() accepts and int() does not (²), non-ASCII digits int() does read
# (Arabic-Indic, full-width), non-ASCII after the dot, and a bare superscript.
MALFORMED_TOKENS = ["%C2%B2.x", "%C2%B2", "1%C2%B2.abc", "%D9%A3.abc", "%EF%BC%91.abc", "1.%C3%A9:x:y", "%E2%81%B0.x"]
TOKEN_ROUTES = [
    ("get", "/preferences/{}/"), ("post", "/preferences/{}/"), ("get", "/unsubscribe/{}/"), ("post", "/unsubscribe/{}/"),
    ("get", "/confirm/{}/"), ("post", "/confirm/{}/"), ("post", "/confirm/{}/resend/"), ("get", "/digest/{}/"),
]


@pytest.mark.parametrize("method, route", TOKEN_ROUTES)
def test_malformed_tokens_get_the_not_valid_page(alice, method, route):
    """Issue 8 #5: `²` passes isdigit() and then int() raised: a 500 that mailed the admins."""
    client = Client(raise_request_exception=False)
    for token in MALFORMED_TOKENS:
        response = getattr(client, method)(route.format(token))
        assert response.status_code == 400, (token, response.status_code)
        assert "not valid" in response.content.decode(), token
    alice.refresh_from_db()
    assert alice.status == Subscriber.Status.ACTIVE
