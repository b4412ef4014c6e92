"""Keeps the dashboard's cached counts warm (CELERY_BEAT_SCHEDULE "refresh-dashboard"), so the
admin's first page never waits for a count over the whole list."""

from celery import shared_task

from newsletter.dashboard import metrics


@shared_task(acks_late=True)
def refresh_dashboard() -> None:
    metrics.refresh()
