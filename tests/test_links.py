"""Preference, unsubscribe and confirmation links: signed, revocable where they should be,
never usable for another subscriber; one-click unsubscribe per RFC 8058."""

import time

import pytest
from django.core import signing
from django.test import Client

from subscriptions import tokens
from subscriptions.models import ConsentEvent, Subscriber

from .helpers import make_subscriber, path_of, preferences_path, unsubscribe_path

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


def test_expired_confirmation_offers_resend(client, topics, settings, django_capture_on_commit_callbacks):
    from django.core import mail

    pending = make_subscriber("late@example.org", status=Subscriber.Status.PENDING)
    token = tokens.make_token(pending, tokens.CONFIRM, {"topics": ["agents"], "frequency": "daily"})
    settings.CONFIRMATION_LINK_MAX_AGE = 1
    time.sleep(2.1)
    page = client.get(f"/confirm/{token}/")
    assert page.status_code == 410 and "expired" in page.content.decode()
    assert client.post(f"/confirm/{token}/").status_code == 410
    pending.refresh_from_db()
    assert pending.status == Subscriber.Status.PENDING
    response = client.post(f"/confirm/{token}/resend/")
    assert response.status_code == 200
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["late@example.org"]


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
    assert gone.status == Subscriber.Status.UNSUBSCRIBED  # nothing changes before confirmation
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
