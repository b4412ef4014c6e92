"""Data rights (issue 12): "Download my data" and "Delete my data" from the preferences page,
and the same two as admin actions. The download is a JSON file of everything kept about the
person and is written to their consent log; the erasure leaves only an Erasure record (a
keyed hash of the address, the time, who asked, counts), so a later sign-up is new and the
erasure stays provable. Django test client against PostgreSQL."""

import hashlib
import json
from datetime import date

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core import mail
from django.test import Client
from django.urls import reverse

from newsletter.models import Delivery, DigestContent, DigestItem, FollowedAuthor, Paper, ReaderProfile, SeedPaper, Vote
from subscriptions import actions, data_rights, tokens
from subscriptions.models import ConsentEvent, Erasure, Subscriber
from subscriptions.token_redaction import redact_tokens

from .helpers import make_subscriber, preferences_path, unsubscribe_path, working_tokens_in
from .test_admin import SUBSCRIBERS, run_action, staff_with

pytestmark = pytest.mark.django_db

TOP_LEVEL = {"format", "exported_at", "subscriber", "topics", "settings", "consent_log", "deliveries", "feedback"}
ERASURES = reverse("admin:subscriptions_erasure_changelist")


def digest_of(*papers) -> DigestContent:
    content = DigestContent.objects.create(key=DigestContent.key_for([p.pk for p in papers]))
    DigestItem.objects.bulk_create(DigestItem(content=content, paper=p, position=n) for n, p in enumerate(papers))
    return content


@pytest.fixture
def world(topics):
    """Alice with everything a reader can have; Bob, who shares a digest with her."""
    alice = make_subscriber("Alice.Reader@Example.org", topics=[topics["agents"], topics["code"]],
                            interests="agents that write code", outside_topics=True, frequency="weekly", weekday=4)
    bob = make_subscriber("bob@example.org", topics=[topics["agents"]])
    one = Paper.objects.create(arxiv_id="2401.00201", title='First <b>paper</b> & "quotes"')
    two = Paper.objects.create(arxiv_id="2401.00202", title="Second paper")
    shared = digest_of(two, one)
    delivery = Delivery.objects.create(subscriber=alice, digest_date=date(2026, 11, 2), status=Delivery.Status.SENT, content=shared)
    Delivery.objects.create(subscriber=alice, digest_date=date(2026, 11, 3), status=Delivery.Status.SKIPPED)
    Delivery.objects.create(subscriber=bob, digest_date=date(2026, 11, 2), status=Delivery.Status.SENT, content=shared)
    Vote.objects.create(subscriber=alice, paper=one, value=Vote.MORE, delivery=delivery)
    Vote.objects.create(subscriber=alice, paper=two, value=Vote.LESS)
    Vote.objects.create(subscriber=bob, paper=one, value=Vote.MORE)
    FollowedAuthor.objects.create(subscriber=alice, name="Ada Lovelace")
    SeedPaper.objects.create(subscriber=alice, arxiv_id="2401.00202", paper=two)
    SeedPaper.objects.create(subscriber=alice, arxiv_id="2401.09999")
    ReaderProfile.objects.create(subscriber=alice, model={"bias": 0.5})
    actions.set_paused(alice, True, actions.Origin("203.0.113.9", "Firefox"))
    actions.set_paused(bob, True, actions.Origin("198.51.100.7", "Safari"))
    return alice, bob, shared


def download(client, subscriber):
    return client.post(reverse("subscriptions:download_data", args=[tokens.make_token(subscriber, tokens.PREFERENCES)]))


def delete_path(subscriber) -> str:
    return reverse("subscriptions:delete_data", args=[tokens.make_token(subscriber, tokens.PREFERENCES)])


# --- Download my data ----------------------------------------------------------------------

def test_the_preferences_page_offers_both(client, world):
    alice, _, _ = world
    path = preferences_path(alice)
    html = client.get(path).content.decode()
    assert ">Download my data</button>" in html and ">Delete my data</a>" in html
    assert f'action="{path}download/"' in html and f'href="{path}delete/"' in html


def test_download_my_data_holds_everything_kept_about_the_person(client, world):
    alice, bob, _ = world
    response = download(client, alice)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="my-data-') and response["Content-Disposition"].endswith('.json"')
    assert "no-store" in response["Cache-Control"]
    body = response.content.decode()
    data = json.loads(body)

    assert set(data) == TOP_LEVEL
    assert data["subscriber"]["email"] == "Alice.Reader@example.org" and data["subscriber"]["status"] == "active"
    assert [t["slug"] for t in data["topics"]] == ["agents", "code"]
    assert data["settings"] == {"frequency": "weekly", "weekday": "Friday", "send_hour": 7, "timezone": "UTC",
                                "papers_per_email": 10, "paused": True, "outside_topics": True}
    assert [(e["kind"], e["ip_address"], e["user_agent"]) for e in data["consent_log"]] == [
        ("pause", "203.0.113.9", "Firefox"), ("export", "127.0.0.1", ""),
    ]
    assert data["deliveries"] == [
        {"date": "2026-11-02", "kind": "daily", "status": "sent", "sent_at": None,
         "papers": [{"arxiv_id": "2401.00202", "title": "Second paper"}, {"arxiv_id": "2401.00201", "title": 'First <b>paper</b> & "quotes"'}]},
        {"date": "2026-11-03", "kind": "daily", "status": "skipped", "sent_at": None, "papers": []},
    ]
    feedback = data["feedback"]
    assert feedback["interests"] == "agents that write code"
    assert [(v["arxiv_id"], v["vote"], v["digest_date"]) for v in feedback["votes"]] == [
        ("2401.00201", "more", "2026-11-02"), ("2401.00202", "less", None),
    ]
    assert [f["name"] for f in feedback["followed_authors"]] == ["Ada Lovelace"]
    assert [(s["arxiv_id"], s["title"]) for s in feedback["seed_papers"]] == [("2401.00202", "Second paper"), ("2401.09999", None)]
    assert feedback["reader_model"]["model"] == {"bias": 0.5}

    # Nothing of anyone else's, and no credential: no secret, no working link.
    assert "bob@example.org" not in body and "198.51.100.7" not in body
    assert alice.secret not in body and working_tokens_in(body, alice) == set()
    # The download is in the consent log, as the file itself shows.
    export = alice.consent_events.get(kind=ConsentEvent.Kind.EXPORT)
    assert export.details == {"by": "preferences page"} and export.ip_address == "127.0.0.1"


def test_download_and_delete_need_a_valid_link(client, world):
    alice, bob, _ = world
    token = tokens.make_token(alice, tokens.PREFERENCES)
    path = reverse("subscriptions:download_data", args=[token])
    assert client.get(path).status_code == 405  # a link scanner gets nothing and logs nothing
    for bad in (token.replace(f"{alice.pk}.", f"{bob.pk}.", 1), token[:-4] + "xxxx", tokens.make_token(alice, tokens.UNSUBSCRIBE)):
        assert client.post(reverse("subscriptions:download_data", args=[bad])).status_code == 400
        assert client.post(reverse("subscriptions:delete_data", args=[bad])).status_code == 400
    alice.revoke_links()
    assert client.post(path).status_code == 400
    assert Client(enforce_csrf_checks=True).post(reverse("subscriptions:download_data", args=[tokens.make_token(alice, tokens.PREFERENCES)])).status_code == 403
    assert not ConsentEvent.objects.filter(kind=ConsentEvent.Kind.EXPORT).exists()
    assert Subscriber.objects.filter(pk=alice.pk).exists() and not Erasure.objects.exists()


def test_logs_blank_the_token_of_the_new_links(world):
    alice, _, _ = world
    for path in (reverse("subscriptions:download_data", args=[tokens.make_token(alice, tokens.PREFERENCES)]), delete_path(alice)):
        assert redact_tokens(f"POST {path} HTTP/1.1") == f"POST /preferences/{alice.pk}.[redacted]/{path.split('/')[3]}/ HTTP/1.1"


# --- Delete my data ------------------------------------------------------------------------

def test_delete_asks_first_then_one_post_erases_the_person(client, world):
    alice, bob, shared = world
    alice_id, email = alice.pk, alice.email
    old_links = [preferences_path(alice), unsubscribe_path(alice), delete_path(alice)]

    page = client.get(delete_path(alice))
    assert page.status_code == 200
    html = page.content.decode()
    assert "Yes, erase everything" in html and email in html and ">Download my data</button>" in html
    assert Subscriber.objects.filter(pk=alice_id).exists() and not Erasure.objects.exists()

    response = client.post(delete_path(alice))
    assert response.status_code == 200 and "Your data is deleted" in response.content.decode()

    assert not Subscriber.objects.filter(pk=alice_id).exists()
    for model in (ConsentEvent, Delivery, Vote, FollowedAuthor, SeedPaper, ReaderProfile):
        assert not model.objects.filter(subscriber_id=alice_id).exists(), model
    assert not Subscriber.topics.through.objects.filter(subscriber_id=alice_id).exists()
    # Bob, and the digest content he shares, are untouched.
    assert bob.consent_events.count() == 1 and bob.votes.count() == 1
    assert Delivery.objects.get(subscriber=bob).content == shared and shared.items.count() == 2

    erasure = Erasure.objects.get()
    assert erasure.origin == "preferences page"
    assert erasure.removed == {"consent_events": 1, "deliveries": 2, "votes": 2, "followed_authors": 1, "seed_papers": 2}
    stored = json.dumps([erasure.address_hash, erasure.origin, erasure.removed]).lower()
    assert "alice" not in stored and "example.org" not in stored and "127.0.0.1" not in stored
    # Keyed: not a plain hash anyone could recompute from a list of addresses.
    assert erasure.address_hash != hashlib.sha256(email.lower().encode()).hexdigest()
    assert list(data_rights.erasures_of("alice.reader@EXAMPLE.org")) == [erasure]
    assert not data_rights.erasures_of("bob@example.org").exists()

    for path in old_links:
        for method in ("get", "post"):
            assert getattr(client, method)(path).status_code == 400, (path, method)


def test_the_erasure_stays_provable_after_a_key_rotation(world, settings):
    alice, _, _ = world
    data_rights.erase(alice)
    old_key = settings.SECRET_KEY
    settings.SECRET_KEY = "another-secret-key-that-is-long-enough-for-hmac-9876543210"
    assert not data_rights.erasures_of(alice.email).exists()
    settings.SECRET_KEY_FALLBACKS = [old_key]
    assert data_rights.erasures_of(alice.email).count() == 1


def test_a_later_signup_with_the_address_is_new(client, world, django_capture_on_commit_callbacks):
    alice, _, _ = world
    client.post(delete_path(alice))
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/", {"email": "alice.reader@example.org", "topics": ["robotics"], "frequency": "daily"}, follow=True)
    assert response.status_code == 200 and "Check your inbox" in response.content.decode()
    again = Subscriber.objects.get(email__iexact="alice.reader@example.org")
    assert again.pk != alice.pk and again.status == Subscriber.Status.PENDING
    assert list(again.topics.values_list("slug", flat=True)) == ["robotics"]
    assert (again.interests, again.outside_topics, again.votes.count(), again.deliveries.count()) == ("", False, 0, 0)
    assert [e.kind for e in again.consent_events.all()] == [ConsentEvent.Kind.SIGNUP]
    assert "previous_status" not in again.consent_events.get().details  # no history carried over
    assert [m.to for m in mail.outbox] == [["alice.reader@example.org"]]  # a confirmation, as for anyone new
    assert Erasure.objects.count() == 1


def test_erasure_records_are_append_only(world):
    alice, _, _ = world
    erasure = data_rights.erase(alice)
    with pytest.raises(ValueError):
        erasure.save()
    with pytest.raises(ValueError):
        erasure.delete()
    # The consent log of everyone else stays append-only too.
    with pytest.raises(ValueError):
        ConsentEvent.objects.first().delete()


# --- In the admin --------------------------------------------------------------------------

def test_admin_download_is_for_one_person_and_logged(admin_client, world, admin_user):
    alice, bob, _ = world
    response = run_action(admin_client, "download_data", alice, bob)
    assert "Select exactly one subscriber" in response.content.decode()
    assert not ConsentEvent.objects.filter(kind=ConsentEvent.Kind.EXPORT).exists()

    response = admin_client.post(SUBSCRIBERS, {"action": "download_data", ACTION_CHECKBOX_NAME: [alice.pk], "index": 0})
    assert response.status_code == 200 and response["Content-Disposition"].startswith('attachment; filename="subscriber-data-')
    data = json.loads(response.content)
    assert set(data) == TOP_LEVEL and data["subscriber"]["email"] == alice.email
    export = alice.consent_events.get(kind=ConsentEvent.Kind.EXPORT)
    assert export.details == {"by": f"admin:{admin_user}"} and export.user_agent == "admin"
    # It shows in the consent log's list.
    log = admin_client.get(reverse("admin:subscriptions_consentevent_changelist") + "?kind=export").content.decode()
    assert "Data downloaded" in log


def test_admin_erase_asks_then_erases(admin_client, world, admin_user):
    alice, bob, _ = world
    page = run_action(admin_client, "erase_selected", alice)
    html = page.content.decode()
    assert "Yes, erase them" in html and alice.email in html
    assert Subscriber.objects.filter(pk=alice.pk).exists()

    response = admin_client.post(SUBSCRIBERS, {"action": "erase_selected", ACTION_CHECKBOX_NAME: [alice.pk], "confirm_erase": "yes", "index": 0}, follow=True)
    assert "Erased 1 subscriber(s)." in response.content.decode()
    assert not Subscriber.objects.filter(pk=alice.pk).exists() and Subscriber.objects.filter(pk=bob.pk).exists()
    assert Erasure.objects.get().origin == f"admin:{admin_user}"


def test_view_only_staff_can_neither_download_nor_erase(world):
    alice, _, _ = world
    viewer = staff_with("view_subscriber")
    page = viewer.get(SUBSCRIBERS).content.decode()
    assert 'value="download_data"' not in page and 'value="erase_selected"' not in page
    for action in ("download_data", "erase_selected"):
        response = viewer.post(SUBSCRIBERS, {"action": action, ACTION_CHECKBOX_NAME: [alice.pk], "confirm_erase": "yes", "index": 0}, follow=True)
        assert "No action selected." in response.content.decode()
    assert Subscriber.objects.filter(pk=alice.pk).exists() and not Erasure.objects.exists()
    assert not ConsentEvent.objects.filter(kind=ConsentEvent.Kind.EXPORT).exists()


def test_erasures_are_listed_read_only_and_found_by_address(admin_client, world):
    alice, bob, _ = world
    erasure = data_rights.erase(alice, origin="admin:someone")
    listing = admin_client.get(ERASURES).content.decode()
    assert "admin:someone" in listing and "alice" not in listing.lower()
    found = admin_client.get(ERASURES, {"q": " ALICE.reader@example.org "})
    assert [e.pk for e in found.context["cl"].result_list] == [erasure.pk]
    assert list(admin_client.get(ERASURES, {"q": "bob@example.org"}).context["cl"].result_list) == []
    assert admin_client.get(reverse("admin:subscriptions_erasure_add")).status_code == 403
    assert admin_client.post(reverse("admin:subscriptions_erasure_delete", args=[erasure.pk])).status_code == 403
    assert admin_client.post(reverse("admin:subscriptions_erasure_change", args=[erasure.pk]), {"origin": "forged"}).status_code == 403
    erasure.refresh_from_db()
    assert erasure.origin == "admin:someone"
