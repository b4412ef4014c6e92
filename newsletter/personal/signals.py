"""The one place that says "this reader told us something new": their profile becomes stale
and a Celery task trains it again once the change is committed (newsletter/tasks/personal.py).
Votes, follows, seed papers and the reader's own words all call `reader_told_us`."""

from django.db import transaction
from django.utils import timezone

from newsletter.models import ReaderProfile


def reader_told_us(subscriber_id: int) -> None:
    now = timezone.now()
    updated = ReaderProfile.objects.filter(subscriber_id=subscriber_id).update(signal_at=now)
    if not updated:
        ReaderProfile.objects.get_or_create(subscriber_id=subscriber_id, defaults={"signal_at": now})

    def queue():
        from newsletter.tasks.personal import retrain_readers

        retrain_readers.delay([subscriber_id])

    transaction.on_commit(queue)
