"""Digest tasks: the dispatcher (Celery beat, every 15 minutes) and the chunk sender.

Both are idempotent, acknowledged late and re-queued if their worker dies (global settings,
repeated here so the guarantee does not depend on them): running either twice sends nothing
twice, because every send goes through a claimed Delivery row.
"""

from celery import shared_task
from django.conf import settings

from newsletter.digests import chunks, dispatch
from newsletter.digests.logs import log


@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def dispatch_digests(ignore_hour: bool = False) -> dict:
    from dataclasses import asdict

    return asdict(dispatch.dispatch(ignore_hour=ignore_hour))


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, ignore_result=True, max_retries=None)
def send_digest_chunk(self, delivery_ids: list[int]) -> dict:
    from dataclasses import asdict

    try:
        report = chunks.send_chunk(delivery_ids, claimer=self.request.id or "eager", attempt=self.request.retries)
    except chunks.RetryLater as later:
        if self.request.retries >= settings.DIGEST_MAX_RETRIES:
            # The rows are pending again; the dispatcher queues them anew after DIGEST_REQUEUE_AFTER.
            log("digest.chunk_gave_up", level=40, task=self.request.id, retries=self.request.retries, reason=str(later))
            return {"gave_up": True}
        raise self.retry(countdown=later.countdown, exc=later.__cause__ or later)
    return asdict(report)
