"""Who is due now, and queuing their deliveries.

A subscriber is due when their local time (per their timezone) is at or after their send
hour, on any day for daily digests and on their weekday for weekly ones, and they have no
delivery for their local date yet. Local time is computed once per distinct timezone; the
timezones that share a local date, hour and weekday are queried together.

Creating the rows is idempotent (unique per subscriber and local date, conflicts ignored), and
so is queuing: a dispatcher takes pending rows with SKIP LOCKED and stamps them, so two
dispatchers at once queue disjoint sets. Rows are queued sorted by the subscriber's topics and
papers-per-email so that subscribers who will get the same digest land in the same chunk and
share one rendering and one provider call.
"""

import time
import zoneinfo
from collections import defaultdict
from dataclasses import asdict, dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from newsletter.models import Delivery
from subscriptions.models import Subscriber

from . import claims, selection
from .logs import log

S = Delivery.Status
_IN_BATCH = 5000


@dataclass
class DispatchReport:
    due: int = 0
    queued: int = 0
    chunks: int = 0
    abandoned: int = 0
    given_up: int = 0
    waiting: str = ""
    seconds: float = 0.0


def local_groups(now, timezones) -> dict[tuple, list[str]]:
    """(local date, local hour, weekday) -> the timezones where it is that date and hour."""
    groups = defaultdict(list)
    for name in timezones:
        try:
            local = now.astimezone(zoneinfo.ZoneInfo(name))
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            log("digest.bad_timezone", level=30, timezone=name)
            continue
        groups[(local.date(), local.hour, local.weekday())].append(name)
    return groups


def due_subscribers(now=None, ignore_hour: bool = False):
    """Yields (local date, queryset of due subscribers) per group of timezones."""
    now = now or timezone.now()
    receiving = Subscriber.objects.receiving()
    timezones = receiving.order_by().values_list("timezone", flat=True).distinct()
    for (local_date, hour, weekday), names in sorted(local_groups(now, timezones).items()):
        due = receiving.filter(timezone__in=names).filter(
            Q(frequency=Subscriber.Frequency.DAILY) | Q(frequency=Subscriber.Frequency.WEEKLY, weekday=weekday)
        )
        if not ignore_hour:
            due = due.filter(send_hour__lte=hour)
        due = due.filter(~Exists(Delivery.objects.filter(subscriber=OuterRef("pk"), digest_date=local_date)))
        yield local_date, due


def create_deliveries(now=None, ignore_hour: bool = False) -> int:
    created = 0
    for local_date, due in due_subscribers(now, ignore_hour):
        rows = [
            Delivery(subscriber_id=pk, digest_date=local_date, kind=frequency)
            for pk, frequency in due.values_list("pk", "frequency")
        ]
        for start in range(0, len(rows), _IN_BATCH):
            Delivery.objects.bulk_create(rows[start : start + _IN_BATCH], ignore_conflicts=True)
        created += len(rows)
    return created


def give_up_old(now=None) -> int:
    now = now or timezone.now()
    cutoff = now.date() - timedelta(days=settings.DIGEST_GIVE_UP_AFTER_DAYS)
    count = Delivery.objects.filter(status=S.PENDING, digest_date__lt=cutoff).update(
        status=S.FAILED, error=f"not sent within {settings.DIGEST_GIVE_UP_AFTER_DAYS} days"
    )
    if count:
        log("digest.given_up", level=30, deliveries=count)
    return count


def take_pending(now=None) -> list[tuple[int, int, str, int]]:
    """Stamp and return the pending rows not queued recently: (id, subscriber id, kind,
    papers per email). Concurrent dispatchers get disjoint rows."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.DIGEST_REQUEUE_AFTER)
    with transaction.atomic():
        rows = list(
            Delivery.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(status=S.PENDING)
            .filter(Q(queued_at__isnull=True) | Q(queued_at__lt=cutoff))
            .order_by()
            .values_list("pk", "subscriber_id", "kind", "subscriber__papers_per_email")
        )
        for start in range(0, len(rows), _IN_BATCH):
            ids = [row[0] for row in rows[start : start + _IN_BATCH]]
            Delivery.objects.filter(pk__in=ids).update(queued_at=now)
    return rows


def chunked_in_send_order(rows, chunk_size: int) -> list[list[int]]:
    """Delivery ids cut into chunks, subscribers with the same topics and size side by side."""
    topics = defaultdict(list)
    subscriber_ids = [row[1] for row in rows]
    through = Subscriber.topics.through.objects
    for start in range(0, len(subscriber_ids), _IN_BATCH):
        pairs = through.filter(subscriber_id__in=subscriber_ids[start : start + _IN_BATCH]).values_list("subscriber_id", "topic_id")
        for sid, topic_id in pairs:
            topics[sid].append(topic_id)
    ordered = sorted(rows, key=lambda r: (r[2], sorted(topics.get(r[1], ())), r[3], r[1]))
    ids = [row[0] for row in ordered]
    return [ids[start : start + chunk_size] for start in range(0, len(ids), chunk_size)]


def dispatch(now=None, ignore_hour: bool = False, enqueue=None) -> DispatchReport:
    """One dispatcher run. `enqueue(ids)` hands a chunk over (default: the Celery task)."""
    if enqueue is None:
        from newsletter.tasks.digests import send_digest_chunk

        def enqueue(ids):
            send_digest_chunk.apply_async(args=[ids])

    started = time.perf_counter()
    now = now or timezone.now()
    report = DispatchReport()
    try:
        selection.source_runs(now)
    except selection.NoGoodScrape as exc:
        # Nothing is created, so everyone gets today's digest once a good scrape arrives.
        report.waiting = str(exc)
    else:
        report.given_up = give_up_old(now)
        report.abandoned = claims.requeue_abandoned()
        report.due = create_deliveries(now, ignore_hour)
        rows = take_pending(now)
        report.queued = len(rows)
        chunks = chunked_in_send_order(rows, settings.DIGEST_CHUNK_SIZE)
        del rows
        for ids in chunks:
            enqueue(ids)
        report.chunks = len(chunks)
    report.seconds = time.perf_counter() - started
    log("digest.dispatch", ignore_hour=ignore_hour, **asdict(report))
    return report


@dataclass
class PlanReport:
    due: int = 0
    would_send: int = 0
    would_skip: int = 0
    digests: int = 0
    waiting: str = ""
    seconds: float = 0.0


def plan(now=None, ignore_hour: bool = False, progress=None) -> PlanReport:
    """A dry run: who is due and what their digests would hold, every distinct digest
    rendered, nothing written and nothing sent."""
    from .chunks import Item, choose_papers, topics_of
    from .links import Recipient
    from .rendering import renderer

    started = time.perf_counter()
    now = now or timezone.now()
    report = PlanReport()
    try:
        pools = {kind: selection.paper_pool(kind, now) for kind in Delivery.Kind.values}
    except selection.NoGoodScrape as exc:
        report.waiting = str(exc)
        return report
    seen = set()
    for local_date, due in due_subscribers(now, ignore_hour):
        rows = list(due.values_list("pk", "email", "secret", "frequency", "papers_per_email"))
        for start in range(0, len(rows), settings.DIGEST_CHUNK_SIZE):
            batch = rows[start : start + settings.DIGEST_CHUNK_SIZE]
            topics = topics_of([row[0] for row in batch])
            items = []
            for pk, email, secret, frequency, per_email in batch:
                topic_ids, names = topics.get(pk, ((), ()))
                items.append(Item(Recipient(0, pk, email, secret, names), frequency, local_date, None, per_email, topic_ids, True))
            for item, papers in zip(items, choose_papers(items, pools)):
                if papers:
                    report.would_send += 1
                    key = (papers, item.kind, local_date)
                    if key not in seen:
                        seen.add(key)
                        renderer.render(papers, pools[item.kind], item.kind, local_date)
                else:
                    report.would_skip += 1
            report.due += len(batch)
            if progress:
                progress(len(batch))
    report.digests = len(seen)
    report.seconds = time.perf_counter() - started
    log("digest.plan", ignore_hour=ignore_hour, **asdict(report))
    return report
