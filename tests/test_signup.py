"""The sign-up form: validation, double opt-in emails, no account enumeration, honeypot, rate limit."""

import re

import pytest
from django.core import mail
from django.test import Client

from subscriptions.models import ConsentEvent, Subscriber

from .helpers import email_text, links_in, make_subscriber, path_of

pytestmark = pytest.mark.django_db


def post_signup(client, email="new@example.org", topics=("agents", "robotics"), frequency="daily", **extra):
    """The form's POST, then the page its redirect leads to (redirect-after-POST)."""
    data = {"email": email, "topics": list(topics), "frequency": frequency, **extra}
    response = client.post("/", data)
    if response.status_code == 303:
        assert response["Location"] == "/check-inbox/"
        return client.get(response["Location"])
    return response


def test_form_shows_topics_unticked_and_a_statement(client, topics):
    response = client.get("/")
    html = response.content.decode()
    assert response.status_code == 200
    for topic in topics.values():
        assert topic.name in html
    topic_boxes = re.findall(r'<input [^>]*name="topics"[^>]*>', html)
    assert len(topic_boxes) == len(topics) and not [box for box in topic_boxes if " checked" in box]  # none pre-ticked
    assert "one-click unsubscribe" in html
    assert 'name="csrfmiddlewaretoken"' in html


def test_signup_creates_pending_subscriber_and_sends_confirmation(client, topics, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = post_signup(client, email="  New.Person@Example.ORG ")
    assert response.status_code == 200
    assert "Check your inbox" in response.content.decode()
    subscriber = Subscriber.objects.get()
    assert subscriber.email == "New.Person@example.org"
    assert subscriber.status == Subscriber.Status.PENDING
    assert set(subscriber.topics.values_list("slug", flat=True)) == {"agents", "robotics"}
    assert [e.kind for e in subscriber.consent_events.all()] == ["signup"]
    event = subscriber.consent_events.get()
    assert event.ip_address == "127.0.0.1"
    assert event.details["topics"] == ["agents", "robotics"]

    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["New.Person@example.org"]
    assert "Confirm" in message.subject
    html = message.alternatives[0][0]
    [confirm_link] = links_in(email_text(message), "/confirm/")
    assert confirm_link in html


def test_confirmation_is_a_post_and_get_changes_nothing(client, topics, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        post_signup(client, frequency="weekly")
    confirm_path = path_of(links_in(email_text(mail.outbox[0]), "/confirm/")[0])

    page = client.get(confirm_path)  # what a link scanner does
    assert page.status_code == 200 and "Confirm" in page.content.decode()
    assert Subscriber.objects.get().status == Subscriber.Status.PENDING

    done = client.post(confirm_path)
    assert done.status_code == 200
    subscriber = Subscriber.objects.get()
    assert subscriber.status == Subscriber.Status.ACTIVE
    assert subscriber.confirmed_at is not None
    assert subscriber.frequency == "weekly"
    assert [e.kind for e in subscriber.consent_events.order_by("id")] == ["signup", "confirm"]
    # Confirming twice is harmless and logs nothing more.
    client.post(confirm_path)
    assert subscriber.consent_events.count() == 2


@pytest.mark.parametrize(("frequency", "sent", "recorded", "stored"), [
    ("weekly", {"weekday": "3"}, {"weekday": 3}, 3),  # Thursday
    ("weekly", {}, {}, 0),  # no day sent (an old form): the default, Monday
    ("daily", {}, {}, 0),
    ("daily", {"weekday": "5"}, {}, 0),  # the hidden field still posts its value: not a choice
])
def test_the_weekday_is_kept_for_weekly_digests_only(client, topics, django_capture_on_commit_callbacks,
                                                     frequency, sent, recorded, stored):
    with django_capture_on_commit_callbacks(execute=True):
        assert post_signup(client, frequency=frequency, **sent).status_code == 200
    signup = ConsentEvent.objects.get(kind=ConsentEvent.Kind.SIGNUP)
    assert signup.details == {"topics": ["agents", "robotics"], "frequency": frequency, "timezone": "UTC", **recorded}
    assert Subscriber.objects.get().weekday == stored  # pending: as the sign-up asked

    client.post(path_of(links_in(email_text(mail.outbox[0]), "/confirm/")[0]))
    subscriber = Subscriber.objects.get()
    assert (subscriber.status, subscriber.frequency, subscriber.weekday) == (Subscriber.Status.ACTIVE, frequency, stored)


def test_an_unknown_weekday_is_refused_on_the_form(client, topics):
    response = post_signup(client, frequency="weekly", weekday="7")
    assert response.status_code == 400 and "Select a valid choice" in response.content.decode()
    assert not Subscriber.objects.exists()


def test_response_does_not_reveal_whether_address_is_known(topics, django_capture_on_commit_callbacks):
    make_subscriber("known@example.org", topics=[topics["agents"]])
    pages = []
    for email in ("known@example.org", "unknown@example.org"):
        with django_capture_on_commit_callbacks(execute=True):
            response = post_signup(Client(), email=email)
        pages.append(response.content.decode().replace(email, "EMAIL"))
        assert response.status_code == 200
    assert pages[0] == pages[1]
    # The active address gets its preferences link; nothing about it changed.
    [known_mail] = [m for m in mail.outbox if m.to == ["known@example.org"]]
    assert "already subscribed" in known_mail.subject
    assert links_in(email_text(known_mail), "/preferences/")
    known = Subscriber.objects.get(email="known@example.org")
    assert list(known.topics.values_list("slug", flat=True)) == ["agents"]
    assert known.consent_events.count() == 0


def test_repeated_signup_of_pending_address_sends_fresh_confirmation(client, topics, django_capture_on_commit_callbacks):
    for _ in range(3):
        with django_capture_on_commit_callbacks(execute=True):
            post_signup(client, email="again@example.org")
    assert Subscriber.objects.count() == 1
    assert len(mail.outbox) == 3
    assert all("Confirm" in m.subject for m in mail.outbox)


def test_email_unique_case_insensitively(client, topics, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        post_signup(client, email="Case@Example.org")
        post_signup(client, email="case@EXAMPLE.org")
        post_signup(client, email="CASE@example.org")
    assert Subscriber.objects.count() == 1
    assert Subscriber.objects.get().email == "Case@example.org"  # as first typed, domain lowercased


@pytest.mark.parametrize(
    "email, message",
    [
        ("", "Please enter your email address."),
        ("not-an-email", "does not look like an email address"),
        ("a@b.c\r\nBcc: x@y.z", "does not look like an email address"),
        ("a@b.c\nBcc: x@y.z", "does not look like an email address"),
        ("x" * 10_000 + "@example.org", "too long"),
        ("<script>alert(1)</script>@example.org", "does not look like an email address"),
        # Issue 8: a quoted local part holding a comma is one valid RFC 5322 address, but a
        # tool that splits recipient lists at commas reads two, one of them the victim's.
        ('"victim@target.org,x"@attacker.example', "does not look like an email address"),
        ('"victim@target.org"@attacker.example', "does not look like an email address"),
        ('"a b"@example.org', "does not look like an email address"),
        ("victim@target.org,x@attacker.example", "does not look like an email address"),
        ("Victim <victim@target.org>", "does not look like an email address"),
        ("a<b>@example.org", "does not look like an email address"),
        ("j\u00f6rg@example.org", "does not look like an email address"),
        ("\u017fam@example.org", "does not look like an email address"),  # long s, which folds to "s"
        ("x" * 65 + "@example.org", "does not look like an email address"),  # RFC 5321: 64 at most
    ],
)
def test_invalid_email_gets_clear_message_and_changes_nothing(client, topics, email, message):
    response = post_signup(client, email=email)
    html = response.content.decode()
    assert response.status_code == 400
    assert message in html
    assert "<script>alert(1)</script>" not in html
    assert Subscriber.objects.count() == 0
    assert ConsentEvent.objects.count() == 0
    assert mail.outbox == []


def test_unknown_and_missing_topics_are_refused(client, topics):
    response = post_signup(client, topics=("agents", "no-such-topic"))
    assert response.status_code == 400
    assert "does not exist" in response.content.decode()
    response = post_signup(client, topics=())
    assert response.status_code == 400
    assert "Pick at least one topic." in response.content.decode()
    assert Subscriber.objects.count() == 0


def test_10kb_fields_and_bad_frequency_are_refused(client, topics):
    response = post_signup(client, frequency="x" * 10_000, website="y" * 10_000)
    assert response.status_code == 400
    assert Subscriber.objects.count() == 0


def test_missing_csrf_token_is_rejected(topics):
    client = Client(enforce_csrf_checks=True)
    response = post_signup(client)
    assert response.status_code == 403
    assert Subscriber.objects.count() == 0


def test_honeypot_looks_like_success_but_stores_nothing(client, topics, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = post_signup(client, website="http://spam.example")
    assert response.status_code == 200
    assert "Check your inbox" in response.content.decode()
    assert Subscriber.objects.count() == 0
    assert mail.outbox == []


def test_signups_are_rate_limited_per_ip(settings, topics, django_capture_on_commit_callbacks):
    settings.SIGNUP_RATE_LIMIT = "3/m"
    statuses = []
    with django_capture_on_commit_callbacks(execute=True):
        for i in range(5):
            statuses.append(post_signup(Client(REMOTE_ADDR="203.0.113.7"), email=f"flood{i}@example.org").status_code)
    assert statuses == [200, 200, 200, 429, 429]
    assert Subscriber.objects.count() == 3
    # Another address is not affected.
    response = post_signup(Client(REMOTE_ADDR="198.51.100.1"), email="other@example.org")
    assert response.status_code == 200
    limited = post_signup(Client(REMOTE_ADDR="203.0.113.7"), email="x@example.org")
    assert "Too many sign-ups" in limited.content.decode()


def test_a_reload_of_the_answer_posts_nothing_again(client, topics, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        answer = client.post("/", {"email": "once@example.org", "topics": ["agents"], "frequency": "daily"})
    assert answer.status_code == 303 and answer["Location"] == "/check-inbox/"
    for _ in range(2):  # the browser's reload GETs the answer page
        page = client.get("/check-inbox/")
        assert page.status_code == 200 and "once@example.org" in page.content.decode()
    assert Subscriber.objects.get().consent_events.count() == 1 and len(mail.outbox) == 1
    # Another browser (no session) learns no address from the answer page.
    assert "@" not in Client().get("/check-inbox/").content.decode().split("<main>")[1].split("</main>")[0]


def test_huge_body_is_refused_without_storing(client, topics):
    response = client.post("/", {"email": "big@example.org", "topics": ["agents"], "frequency": "daily", "website": "z" * (1024 * 1024)})
    assert response.status_code == 400
    assert Subscriber.objects.count() == 0


# --- Issue 8: what a sign-up may make us send, and what its answer tells ----------------------


@pytest.mark.parametrize("status", [Subscriber.Status.BOUNCED, Subscriber.Status.COMPLAINED])
def test_signup_of_a_bounced_or_complained_address_sends_nothing(topics, status, django_capture_on_commit_callbacks):
    """Issue 8 #4: no public endpoint ever emails an address the mail system suppressed."""
    make_subscriber("hurt@example.org", status=status, topics=[topics["agents"]])
    with django_capture_on_commit_callbacks(execute=True):
        response = post_signup(Client(), email="hurt@example.org")
    assert response.status_code == 200 and "Check your inbox" in response.content.decode()
    assert mail.outbox == []
    assert Subscriber.objects.get().status == status


@pytest.mark.parametrize("status", [None, Subscriber.Status.PENDING, Subscriber.Status.ACTIVE, Subscriber.Status.UNSUBSCRIBED])
def test_one_address_gets_at_most_three_emails_a_day_whatever_the_ip(topics, settings, status, django_capture_on_commit_callbacks):
    """Issue 8 #4: 30 sign-ups of one address from 3 IPs sent 30 emails."""
    if status:
        make_subscriber("target@example.org", status=status, topics=[topics["agents"]])
    for n in range(30):
        with django_capture_on_commit_callbacks(execute=True):
            response = post_signup(Client(REMOTE_ADDR=f"203.0.113.{n % 3 + 1}"), email="target@example.org")
        assert response.status_code == 200
    assert [m.to for m in mail.outbox] == [["target@example.org"]] * 3
    assert settings.EMAILS_PER_ADDRESS_PER_DAY == 3
    # Another address has its own allowance.
    with django_capture_on_commit_callbacks(execute=True):
        post_signup(Client(REMOTE_ADDR="203.0.113.1"), email="bystander@example.org")
    assert mail.outbox[-1].to == ["bystander@example.org"]


def test_signup_answer_does_the_same_work_whatever_the_address(topics, celery_worker):
    """Issue 8 #11: the answer took 3 ms longer for a new address (it was stored first).
    Now the answer only queues the sign-up: the same SQL for every address, whatever its
    state, and a real worker sends the right email afterwards."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    make_subscriber("active@example.org", topics=[topics["agents"]])
    make_subscriber("gone@example.org", status=Subscriber.Status.UNSUBSCRIBED, topics=[topics["agents"]])
    make_subscriber("bounced@example.org", status=Subscriber.Status.BOUNCED, topics=[topics["agents"]])
    addresses = ["new@example.org", "active@example.org", "gone@example.org", "bounced@example.org"]
    work = {}
    for email in addresses:
        with CaptureQueriesContext(connection) as queries:
            response = post_signup(Client(), email=email)
        assert response.status_code == 200
        work[email] = (response.content.decode().replace(email, "EMAIL"), [q["sql"].replace(email, "EMAIL") for q in queries])
    assert len(set(map(repr, work.values()))) == 1, work
    assert all("INSERT" not in sql and "UPDATE" not in sql for sql in work["new@example.org"][1])

    received = celery_worker.smtp_sink.wait_for(3)
    kinds = sorted((m["envelope_to"][0], "already" if "already subscribed" in str(m["message"]["Subject"]) else "confirm")
                   for m in received)
    assert kinds == [("active@example.org", "already"), ("gone@example.org", "confirm"), ("new@example.org", "confirm")]
    assert Subscriber.objects.get(email="new@example.org").status == Subscriber.Status.PENDING
    assert Subscriber.objects.get(email="bounced@example.org").status == Subscriber.Status.BOUNCED
