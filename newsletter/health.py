"""Deliverability health: the checks behind the dashboard's warning colours and the admins'
alert emails (Celery beat: newsletter.tasks.health.check_deliverability).

Three conditions, each mailed to ADMINS at most once a day while it lasts:
- the complaint rate of the last 7 days is above HEALTH_COMPLAINT_RATE_MAX (0.1%: Gmail asks
  bulk senders to stay under it, and rejects mail from senders who reach 0.3%);
- the bounce rate of the last 7 days is above HEALTH_BOUNCE_RATE_MAX (2%);
- no good scrape has finished for HEALTH_SCRAPE_MAX_AGE_HOURS (36 hours): digests stop.

Rates count over calendar days (UTC), the window ending today: sends are deliveries with
status `sent` by digest date, complaints and bounces are consent-log events (see
newsletter/dashboard/metrics.py for exactly which; imported rows never count).
"""

import logging
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.mail import mail_admins
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from newsletter.dashboard.metrics import Window
from newsletter.logs import EventLog
from newsletter.models import Delivery, HealthAlert, ScrapeRun
from subscriptions.models import ConsentEvent

log = EventLog(__name__)
Condition = HealthAlert.Condition


@dataclass(frozen=True)
class Rate:
    events: int
    sent: int

    @property
    def value(self) -> float | None:
        return self.events / self.sent if self.sent else None

    def above(self, limit: float) -> bool:
        return self.value is not None and self.value > limit


# An imported list's old complaints and bounces (subscriptions/importing.py) are not ours.
# (A plain exclude() on the key would drop the rows that have no `source` at all.)
NOT_IMPORTED = Q(details__source__isnull=True) | ~Q(details__source="import")


def sent_in(window: Window) -> int:
    return Delivery.objects.filter(
        status=Delivery.Status.SENT, digest_date__gte=window.first, digest_date__lte=window.today
    ).count()


def complaint_rate(days: int = 7, now=None) -> Rate:
    window = Window.ending(now, days)
    complaints = ConsentEvent.objects.filter(kind=ConsentEvent.Kind.COMPLAINT, created_at__gte=window.start).filter(NOT_IMPORTED).count()
    return Rate(complaints, sent_in(window))


def bounce_rate(days: int = 7, now=None) -> Rate:
    window = Window.ending(now, days)
    bounces = ConsentEvent.objects.filter(
        kind=ConsentEvent.Kind.BOUNCE, details__has_key="previous_status", created_at__gte=window.start
    ).filter(NOT_IMPORTED).count()
    return Rate(bounces, sent_in(window))


def scrape_age(now=None) -> timedelta | None:
    """How long ago the newest good scrape started (None: there never was one)."""
    run = ScrapeRun.objects.last_good()
    return (now or timezone.now()) - run.started_at if run else None


@dataclass(frozen=True)
class Problem:
    condition: str
    subject: str
    message: str


def _rate_problem(condition, name: str, rate: Rate, limit: float, admin_path: str) -> Problem:
    return Problem(
        condition,
        f"{name} rate {rate.value:.2%} over the last 7 days (limit {limit:.1%})",
        "\n".join([
            f"{rate.events} {name.lower()}s for {rate.sent} digests sent over the last 7 days: {rate.value:.3%}.",
            f"The limit is {limit:.2%}. Mailbox providers throttle or reject senders above it "
            "(Gmail: keep complaints under 0.1%, never reach 0.3%).",
            "",
            f"Dashboard: {settings.SITE_URL}{reverse('admin:index')}",
            f"Events:    {settings.SITE_URL}{admin_path}",
        ]),
    )


def problems(now=None) -> list[Problem]:
    """Every condition that holds now."""
    now = now or timezone.now()
    found = []
    events = reverse("admin:subscriptions_consentevent_changelist")
    complaints = complaint_rate(7, now)
    if complaints.above(settings.HEALTH_COMPLAINT_RATE_MAX):
        found.append(_rate_problem(Condition.COMPLAINT_RATE, "Complaint", complaints, settings.HEALTH_COMPLAINT_RATE_MAX,
                                   f"{events}?kind__exact=complaint"))
    bounces = bounce_rate(7, now)
    if bounces.above(settings.HEALTH_BOUNCE_RATE_MAX):
        found.append(_rate_problem(Condition.BOUNCE_RATE, "Bounce", bounces, settings.HEALTH_BOUNCE_RATE_MAX,
                                   f"{events}?kind__exact=bounce"))
    age, limit = scrape_age(now), timedelta(hours=settings.HEALTH_SCRAPE_MAX_AGE_HOURS)
    if age is None or age > limit:
        since = "No scrape has ever succeeded" if age is None else f"The newest good scrape started {age.total_seconds() / 3600:.0f} hours ago"
        found.append(Problem(
            Condition.STALE_SCRAPE,
            f"No good paper scrape for over {settings.HEALTH_SCRAPE_MAX_AGE_HOURS} hours",
            f"{since}; digests are not built from stale papers, so none go out until one succeeds.\n\n"
            f"Scrape runs: {settings.SITE_URL}{reverse('admin:newsletter_scraperun_changelist')}",
        ))
    return found


def alert_admins(now=None) -> list[str]:
    """Mail ADMINS about each condition not mailed yet today; returns the conditions mailed."""
    now = now or timezone.now()
    return [p.condition for p in problems(now) if _mail_once(p, timezone.localdate(now))]


def _mail_once(problem: Problem, day) -> bool:
    if not settings.ADMINS:
        log("health.alert_not_mailed", level=logging.ERROR, condition=problem.condition, reason="ADMINS is empty")
        return False
    try:
        # The row and the mail commit together: a second checker waits on the row, then finds
        # it; a mail that fails rolls the row back, so the next check tries again.
        with transaction.atomic():
            HealthAlert.objects.create(condition=problem.condition, day=day, subject=problem.subject[:200], message=problem.message)
            mail_admins(problem.subject, problem.message, fail_silently=False)
    except IntegrityError:
        return False
    except Exception:  # SMTP down, provider refusing: the next check tries again.
        log("health.alert_not_mailed", level=logging.ERROR, exc_info=True, condition=problem.condition,
            reason="could not mail the admins")
        return False
    log("health.alert_mailed", level=logging.WARNING, condition=problem.condition, subject=problem.subject)
    return True
