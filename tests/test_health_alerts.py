"""Deliverability alerts (newsletter/health.py, beat task check_deliverability): ADMINS get one
email when the 7-day complaint rate passes 0.1%, the bounce rate passes 2%, or no scrape has
succeeded for 36 hours; a condition that lasts is mailed once a day, however often the beat
checks it."""

from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.core import mail
from django.utils import timezone

from newsletter import health
from newsletter.models import Delivery, HealthAlert
from newsletter.tasks.health import check_deliverability
from subscriptions import actions
from subscriptions.models import Subscriber

pytestmark = pytest.mark.django_db

ADMINS = [("Ops", "ops@example.org")]


@pytest.fixture
def admins(settings):
    settings.ADMINS = ADMINS
    return settings


@pytest.fixture
def fresh_scrape(make_scrape):
    return make_scrape([], started_at=timezone.now() - timedelta(hours=2))


def sends(count: int, days: int = 5) -> list[Subscriber]:
    """`count` sent digests spread over the last `days` days, to count // days readers."""
    readers = Subscriber.objects.bulk_create(
        [Subscriber(email=f"reader{i}@example.org", status="active") for i in range(count // days)]
    )
    today = timezone.localdate()
    Delivery.objects.bulk_create([
        Delivery(subscriber=r, digest_date=today - timedelta(days=d), status=Delivery.Status.SENT, sent_at=timezone.now())
        for r in readers for d in range(days)
    ])
    return readers


def complain(readers, count: int):
    for reader in readers[:count]:
        actions.suppress(reader, Subscriber.Status.COMPLAINED, actions.Origin(user_agent="mailgun webhook"), esp="Mailgun")


def bounce(readers, count: int):
    for reader in readers[:count]:
        actions.suppress(reader, Subscriber.Status.BOUNCED, actions.Origin(user_agent="mailgun webhook"), esp="Mailgun")


def test_complaints_at_the_limit_are_fine_above_it_one_email(admins, fresh_scrape):
    readers = sends(1000)
    complain(readers, 1)  # 1 in 1,000: exactly 0.1%, not above it
    assert health.complaint_rate().value == pytest.approx(0.001)
    assert check_deliverability.delay().get() == []
    assert not mail.outbox

    complain(readers[1:], 1)  # 0.2%
    assert check_deliverability.delay().get() == [HealthAlert.Condition.COMPLAINT_RATE]
    for _ in range(5):  # the beat checks every hour: no second email today
        assert check_deliverability.delay().get() == []
    [message] = mail.outbox
    assert message.to == ["ops@example.org"]
    assert "Complaint rate 0.20% over the last 7 days (limit 0.1%)" in message.subject
    assert "2 complaints for 1000 digests sent" in message.body
    assert "/admin/subscriptions/consentevent/?kind__exact=complaint" in message.body
    alert = HealthAlert.objects.get()
    assert (alert.condition, alert.day) == ("complaint_rate", timezone.localdate())

    # Still too high tomorrow: one more email, for the new day.
    tomorrow = timezone.now() + timedelta(days=1)
    assert health.alert_admins(tomorrow) == [HealthAlert.Condition.COMPLAINT_RATE]
    assert health.alert_admins(tomorrow) == []
    assert len(mail.outbox) == 2


def test_complaints_older_than_a_week_do_not_count(admins, fresh_scrape):
    readers = sends(1000)
    complain(readers, 5)
    next_week = timezone.now() + timedelta(days=8)
    assert health.complaint_rate(7, next_week).events == 0
    assert "complaint_rate" not in health.alert_admins(next_week)


def test_bounce_rate_above_two_percent(admins, fresh_scrape):
    readers = sends(1000)
    bounce(readers, 20)  # 2.0%: at the limit
    # Soft bounces that only counted up suppress nobody and are no bounce here.
    from subscriptions.bounces import count_soft_bounce

    count_soft_bounce(readers[150], actions.Origin(user_agent="webhook"), {"esp": "Mailgun"})
    assert health.bounce_rate().events == 20
    assert health.alert_admins() == []
    bounce(readers[20:], 1)  # 2.1%
    assert health.alert_admins() == [HealthAlert.Condition.BOUNCE_RATE]
    assert health.alert_admins() == []
    [message] = mail.outbox
    assert message.subject.endswith("Bounce rate 2.10% over the last 7 days (limit 2.0%)")


def test_no_good_scrape_for_36_hours(admins, make_scrape):
    now = timezone.now()
    make_scrape([], started_at=now - timedelta(hours=35))
    make_scrape([], status="failed", started_at=now - timedelta(hours=1))  # a failed run is no good run
    assert health.alert_admins(now) == []
    later = now + timedelta(hours=2)  # 37 hours after the good run
    assert health.alert_admins(later) == [HealthAlert.Condition.STALE_SCRAPE]
    assert health.alert_admins(later + timedelta(minutes=30)) == []
    [message] = mail.outbox
    assert message.subject.endswith("No good paper scrape for over 36 hours")
    assert "started 37 hours ago" in message.body


def test_each_condition_gets_its_own_email(admins):
    readers = sends(100, days=1)
    complain(readers, 1)
    bounce(readers[1:], 3)
    assert sorted(health.alert_admins()) == ["bounce_rate", "complaint_rate", "stale_scrape"]
    assert len(mail.outbox) == 3
    assert health.alert_admins() == [] and len(mail.outbox) == 3


def test_a_mail_that_fails_is_tried_again_at_the_next_check(admins, fresh_scrape, caplog):
    readers = sends(100, days=1)
    complain(readers, 1)
    admins.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    admins.EMAIL_HOST, admins.EMAIL_PORT, admins.EMAIL_TIMEOUT = "127.0.0.1", 9, 2  # nothing listens there
    assert health.alert_admins() == []
    assert not HealthAlert.objects.exists()
    assert "could not mail the admins" in caplog.text
    admins.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert health.alert_admins() == ["complaint_rate"]
    assert len(mail.outbox) == 1


def test_nothing_is_recorded_when_nobody_would_be_mailed(settings, fresh_scrape):
    settings.ADMINS = []
    complain(sends(100, days=1), 1)
    assert health.alert_admins() == [] and not HealthAlert.objects.exists()


def test_beat_runs_the_checks_every_hour():
    entry = django_settings.CELERY_BEAT_SCHEDULE["check-deliverability"]
    assert entry["task"] == check_deliverability.name
    assert entry["schedule"].minute == {20} and len(entry["schedule"].hour) == 24
