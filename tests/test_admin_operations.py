"""Daily operations in the admin: "Send a test digest to this address" from a subscriber's
preview (sent through the digest backend to a real SMTP sink, marked as a test, nothing
recorded), the preview's date (the next one not sent yet), and each delivery's link to the
digest it sent."""

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from newsletter.models import Delivery
from newsletter.tasks.digests import dispatch_now
from subscriptions import tokens
from subscriptions.models import Subscriber

from .helpers import make_subscriber
from .test_digest_pages import papers

pytestmark = pytest.mark.django_db


def preview_url(subscriber) -> str:
    return reverse("admin:newsletter_delivery_preview", args=[subscriber.pk])


def send_test_url(subscriber) -> str:
    return reverse("admin:newsletter_delivery_send_test", args=[subscriber.pk])


@pytest.fixture
def reader(topics, make_scrape):
    make_scrape(papers())
    return make_subscriber("reader@example.org", topics=[topics["agents"], topics["code"]])


def test_send_a_test_digest_to_a_typed_address(admin_client, reader, smtp_settings):
    page = admin_client.get(preview_url(reader)).content.decode()
    assert "Send a test digest to this address" in page and 'id="send-test-digest"' in page

    response = admin_client.post(send_test_url(reader), {"to": "qa@example.net"}, follow=True)
    assert response.status_code == 200
    [received] = smtp_settings.wait_for(1)
    assert received["envelope_to"] == ["qa@example.net"]
    message = received["message"]
    assert message["To"] == "qa@example.net"
    # Read back exactly: a long encoded Subject starts on its own line (outbox.subject_for).
    assert re.fullmatch(r"\[TEST\] 2 new in Agents and tool use, Code generation · \d{1,2} [A-Z][a-z]{2}", message["Subject"])
    assert "Tricky <i>title</i>" in message.get_body(preferencelist=("plain",)).get_content()
    # Nothing in it acts for the reader: their links are redacted, as in the preview.
    assert tokens.preferences_url(reader) not in message.as_string()
    assert "sent to qa@example.net" in response.content.decode()
    # No delivery recorded: the reader's own digest still goes out today.
    assert not Delivery.objects.exists()
    dispatch_now(ignore_hour=True)
    assert Delivery.objects.get().status == Delivery.Status.SENT
    assert len(smtp_settings.wait_for(2)) == 2


def test_a_test_digest_needs_a_valid_address_and_the_change_permission(client, admin_client, reader, django_user_model):
    response = admin_client.post(send_test_url(reader), {"to": "not an address"})
    assert response.status_code == 200 and "Enter a valid email address." in response.content.decode()
    assert not mail.outbox
    assert admin_client.get(send_test_url(reader)).status_code == 405  # only a POST sends

    viewer = django_user_model.objects.create_user("viewer", password="pw-viewer-123", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_subscriber"))
    client.force_login(viewer)
    assert 'id="send-test-digest"' not in client.get(preview_url(reader)).content.decode()
    assert client.post(send_test_url(reader), {"to": "qa@example.net"}).status_code == 403
    assert not mail.outbox


def test_nothing_is_sent_when_no_digest_can_be_built(admin_client, topics, make_scrape):
    make_scrape(papers())
    nobody_matches = make_subscriber("robots@example.org", topics=[topics["robotics"]])
    response = admin_client.post(send_test_url(nobody_matches), {"to": "qa@example.net"}, follow=True)
    assert "Nothing sent. Nothing new matches" in response.content.decode()
    assert not mail.outbox


def test_the_preview_shows_the_next_date_not_sent_yet(admin_client, reader, topics):
    today = timezone.localdate()
    assert admin_client.get(preview_url(reader)).context["preview"].digest_date == today
    Delivery.objects.create(subscriber=reader, digest_date=today, status=Delivery.Status.SENT, sent_at=timezone.now())
    response = admin_client.get(preview_url(reader))
    assert response.context["preview"].digest_date == today + timedelta(days=1)
    assert f'id="next-digest-date">{(today + timedelta(days=1)):%A %-d %B %Y}<' in response.content.decode()

    # Weekly: the next weekday of theirs without a finished digest; a pending one still counts as next.
    weekly = make_subscriber("weekly@example.org", topics=[topics["agents"]], frequency="weekly", weekday=today.weekday())
    assert admin_client.get(preview_url(weekly)).context["preview"].digest_date == today
    Delivery.objects.create(subscriber=weekly, digest_date=today, status=Delivery.Status.PENDING)
    assert admin_client.get(preview_url(weekly)).context["preview"].digest_date == today
    Delivery.objects.filter(subscriber=weekly).update(status=Delivery.Status.SKIPPED)
    assert admin_client.get(preview_url(weekly)).context["preview"].digest_date == today + timedelta(days=7)


def test_each_delivery_links_to_the_digest_it_sent(admin_client, reader):
    dispatch_now(ignore_hour=True)
    delivery = Delivery.objects.get()
    digest_url = reverse("admin:newsletter_delivery_digest", args=[delivery.pk])
    listing = admin_client.get(reverse("admin:newsletter_delivery_changelist")).content.decode()
    assert f'<a href="{digest_url}">View digest</a>' in listing
    assert "provider_message_id" not in admin_client.get(reverse("admin:newsletter_delivery_changelist")).context["cl"].list_display
    assert digest_url in admin_client.get(reverse("admin:newsletter_delivery_change", args=[delivery.pk])).content.decode()

    page = admin_client.get(digest_url)
    html = page.content.decode()
    assert page.status_code == 200
    assert [p.arxiv_id for p in page.context["papers"]] == ["2611.30001", "2611.30002"]
    assert "Tricky &lt;i&gt;title&lt;/i&gt;" in html  # scraped text stays text
    assert "<iframe" in html and "sandbox" in html
    assert tokens.preferences_url(reader) not in html and tokens.unsubscribe_url(reader) not in html

    # A skipped delivery sent nothing: no link, and its digest page does not exist.
    other = make_subscriber("other@example.org")
    skipped = Delivery.objects.create(subscriber=other, digest_date=timezone.localdate(), status=Delivery.Status.SKIPPED)
    assert admin_client.get(reverse("admin:newsletter_delivery_digest", args=[skipped.pk])).status_code == 404


def test_view_only_staff_without_the_delivery_permission_see_no_digest(client, reader, django_user_model):
    dispatch_now(ignore_hour=True)
    delivery = Delivery.objects.get()
    someone = django_user_model.objects.create_user("someone", password="pw-someone-123", is_staff=True)
    someone.user_permissions.add(Permission.objects.get(codename="view_subscriber"))
    client.force_login(someone)
    assert client.get(reverse("admin:newsletter_delivery_digest", args=[delivery.pk])).status_code == 403
    # The dashboard shows such a user only what they may see: here, the subscribers.
    page = client.get(reverse("admin:index")).content.decode()
    assert 'id="panel-subscribers"' in page and 'id="panel-digests"' not in page and 'id="panel-complaints"' not in page
    assert Subscriber.objects.count() == 1
