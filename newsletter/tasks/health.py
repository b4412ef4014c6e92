"""The hourly deliverability check (CELERY_BEAT_SCHEDULE "check-deliverability"): mails
ADMINS about a high complaint or bounce rate, or stale papers, once a day per condition."""

from celery import shared_task

from newsletter import health


@shared_task(acks_late=True)
def check_deliverability() -> list[str]:
    return health.alert_admins()
