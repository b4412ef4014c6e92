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
from django.db import connection, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from newsletter.app_settings import app_settings
from newsletter.logs import EventLog
from newsletter.models import Delivery
from subscriptions.models import Subscriber

from . import claims, selection
from .rendering import renderer

log = EventLog(__name__)

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
    """A pending delivery, stamped as queued at `now`, for every due subscriber; returns how
    many were created. A subscriber who already has one for that local date is skipped by the
    unique constraint, so running this twice, or twice at once, creates nothing twice.

    One INSERT ... SELECT ... ON CONFLICT DO NOTHING RETURNING per group of timezones (the
    SELECT is the ORM's due queryset): a hundred thousand rows take about a second, where
    bulk_create() spends seven building and binding them one by one."""
    now = now or timezone.now()
    table = connection.ops.quote_name(Delivery._meta.db_table)
    created = 0
    for local_date, due in due_subscribers(now, ignore_hour):
        select, params = due.values_list("pk", "frequency").query.sql_with_params()
        sql = (
            f"INSERT INTO {table} (subscriber_id, kind, digest_date, status, created_at, queued_at, claimed_by,"
            " attempts, provider_message_id, error)"
            f" SELECT due.pk, due.frequency, %s, %s, %s, %s, '', 0, '', '' FROM ({select}) AS due WHERE true"
            " ON CONFLICT (subscriber_id, digest_date) DO NOTHING"
        )
        with connection.cursor() as cursor:
            stamp = connection.ops.adapt_datetimefield_value(now)  # as the ORM stores it
            cursor.execute(sql, [connection.ops.adapt_datefield_value(local_date), S.PENDING, stamp, stamp, *params])
            created += cursor.rowcount
    return created


def give_up_old(now=None) -> int:
    now = now or timezone.now()
    cutoff = now.date() - timedelta(days=app_settings.DIGEST_GIVE_UP_AFTER_DAYS)
    count = Delivery.objects.filter(status=S.PENDING, digest_date__lt=cutoff).update(
        status=S.FAILED, error=f"not sent within {app_settings.DIGEST_GIVE_UP_AFTER_DAYS} days"
    )
    if count:
        log("digest.given_up", level=30, deliveries=count)
    return count


def take_pending(now) -> int:
    """Stamp as queued at `now` the pending rows not queued recently (a lost queue message, a
    chunk that gave up retrying); returns how many. Concurrent dispatchers get disjoint rows."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=app_settings.DIGEST_REQUEUE_AFTER)
    with transaction.atomic():
        ids = list(
            Delivery.objects.select_for_update(skip_locked=True)
            .filter(status=S.PENDING)
            .filter(Q(queued_at__isnull=True) | Q(queued_at__lt=cutoff))
            .order_by()
            .values_list("pk", flat=True)
        )
        for start in range(0, len(ids), _IN_BATCH):
            Delivery.objects.filter(pk__in=ids[start : start + _IN_BATCH]).update(queued_at=now)
    return len(ids)


def chunked_in_send_order(queued_at, chunk_size: int) -> list[list[int]]:
    """The deliveries stamped `queued_at` by this run, cut into chunks and ordered so that
    subscribers who will most likely get the same digest are side by side: by kind, topics
    and papers per email, which are all a digest depends on but what each reader was sent
    before (the chunk decides that exactly) and a personal ranking's view of them (readers it
    knows nothing about keep sharing). Two queries, whatever the number, and no ranking."""
    queued = Delivery.objects.filter(status=S.PENDING, queued_at=queued_at)
    rows = list(queued.values_list("pk", "subscriber_id", "kind", "subscriber__papers_per_email"))
    topics = defaultdict(list)
    pairs = Subscriber.topics.through.objects.filter(
        subscriber__deliveries__status=S.PENDING, subscriber__deliveries__queued_at=queued_at
    )
    for sid, topic_id in pairs.values_list("subscriber_id", "topic_id"):
        topics[sid].append(topic_id)
    rows.sort(key=lambda row: (row[2], sorted(topics.get(row[1], ())), row[3], row[1]))
    ids = [row[0] for row in rows]
    return [ids[start : start + chunk_size] for start in range(0, len(ids), chunk_size)]


def dispatch(now=None, ignore_hour: bool = False, *, enqueue) -> DispatchReport:
    """One dispatcher run. `enqueue(ids)` hands each chunk over: the Celery task's
    (newsletter.tasks.digests.queue_chunk), or the caller's own (manage.py send_digests)."""
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
        report.queued = report.due + take_pending(now)
        chunks = chunked_in_send_order(now, settings.DIGEST_CHUNK_SIZE)
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
    started = time.perf_counter()
    now = now or timezone.now()
    report = PlanReport()
    pools, waiting = selection.pools_for(Delivery.Kind.values, now)
    if waiting:
        report.waiting = next(iter(waiting.values()))
        return report
    seen = set()
    for local_date, due in due_subscribers(now, ignore_hour):
        rows = list(due.values_list("pk", "frequency", "papers_per_email"))
        for start in range(0, len(rows), settings.DIGEST_CHUNK_SIZE):
            batch = rows[start : start + settings.DIGEST_CHUNK_SIZE]
            topics = selection.topics_of([row[0] for row in batch])
            readers = [
                selection.Reader(pk, frequency, local_date, topics.get(pk, ((), ()))[0], per_email)
                for pk, frequency, per_email in batch
            ]
            for reader, papers in zip(readers, selection.choose(readers, pools)):
                if papers:
                    report.would_send += 1
                    key = (papers, reader.kind, tuple(sorted(reader.topic_ids)))
                    if key not in seen:
                        seen.add(key)
                        renderer.render(papers, pools[reader.kind], reader.kind, key[2])
                else:
                    report.would_skip += 1
            report.due += len(batch)
            if progress:
                progress(len(batch))
    report.digests = len(seen)
    report.seconds = time.perf_counter() - started
    log("digest.plan", ignore_hour=ignore_hour, **asdict(report))
    return report
