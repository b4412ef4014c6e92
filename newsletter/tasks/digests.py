"""Digest tasks: the dispatcher (Celery beat, every 15 minutes) and the chunk sender.

Both are idempotent, acknowledged late and re-queued if their worker dies (global settings,
repeated here so the guarantee does not depend on them): running either twice sends nothing
twice, because every send goes through a claimed Delivery row.

The dispatcher itself (newsletter.digests.dispatch) knows nothing of Celery: it is handed
`queue_chunk`, which queues one chunk for this module's sender.
"""

from dataclasses import asdict

from celery import shared_task

from newsletter.app_settings import app_settings
from newsletter.digests import chunks, dispatch
from newsletter.logs import EventLog

log = EventLog(__name__)


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, ignore_result=True, max_retries=None)
def send_digest_chunk(self, delivery_ids: list[int]) -> dict:
    try:
        report = chunks.send_chunk(delivery_ids, claimer=self.request.id or "eager", attempt=self.request.retries)
    except chunks.RetryLater as later:
        if self.request.retries >= app_settings.DIGEST_MAX_RETRIES:
            # The rows are pending again; the dispatcher queues them anew after DIGEST_REQUEUE_AFTER.
            log("digest.chunk_gave_up", level=40, task=self.request.id, retries=self.request.retries, reason=str(later))
            return {"gave_up": True}
        raise self.retry(countdown=later.countdown, exc=later.__cause__ or later)
    return asdict(report)


def queue_chunk(delivery_ids: list[int]) -> None:
    """What the dispatcher enqueues: one chunk for a worker on the `digests` queue."""
    send_digest_chunk.apply_async(args=[delivery_ids])


def dispatch_now(now=None, ignore_hour: bool = False) -> dispatch.DispatchReport:
    """One dispatcher run whose chunks go to the workers (run eagerly where Celery is)."""
    return dispatch.dispatch(now, ignore_hour, enqueue=queue_chunk)


@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def dispatch_digests(ignore_hour: bool = False) -> dict:
    return asdict(dispatch_now(ignore_hour=ignore_hour))
