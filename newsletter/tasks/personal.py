"""Training readers' models again, only for readers with new signal (newsletter/personal/)."""

from celery import shared_task

from newsletter.personal import profiles


@shared_task(acks_late=True)
def retrain_readers(subscriber_ids=None) -> dict:
    """Train the stale profiles among `subscriber_ids` (None: every stale profile)."""
    return profiles.retrain_stale(subscriber_ids)
