"""The database side of exactly-once.

A worker takes deliveries with SELECT ... FOR UPDATE SKIP LOCKED and marks them `sending`
under its claimer id (the Celery task id) before it renders or sends anything. While it works
it holds a PostgreSQL session-level advisory lock named after that id: the lock disappears
with the worker's database session, so a killed worker is known dead at once and its
`sending` rows may be taken over (by the redelivered task, or re-queued by the dispatcher).
Without PostgreSQL (the SQLite defaults) a claim older than DIGEST_CLAIM_TIMEOUT counts as
abandoned instead.

Each provider call is recorded right after it returned, guarded by the claim, so a row is
only ever moved on by its current claimer. Database hiccups while recording are retried for a
while: a call the provider accepted should not be sent again because PostgreSQL restarted.
"""

import time
import zlib
from contextlib import contextmanager
from datetime import timedelta

from django.db import connection, transaction
from django.db.models import BigIntegerField, Case, CharField, F, Q, Value, When
from django.utils import timezone

from newsletter.app_settings import app_settings
from newsletter.logs import EventLog
from newsletter.models import Delivery, DigestContent, DigestItem

from .providers import DATABASE_ERRORS

log = EventLog(__name__)

# First half of the two-int advisory lock key: "digest claims" (ASCII "DgCl").
_LOCK_CLASS = 0x4467436C
S = Delivery.Status


def _lock_key(claimer: str) -> int:
    return zlib.crc32(claimer.encode()) - 2**31


def _uses_locks() -> bool:
    return connection.vendor == "postgresql"


def _try_lock(claimer: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [_LOCK_CLASS, _lock_key(claimer)])
        return cursor.fetchone()[0]


def _unlock(claimer: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [_LOCK_CLASS, _lock_key(claimer)])


@contextmanager
def liveness_lock(claimer: str):
    """Yields True if this claimer id is ours now, False if another live session holds it
    (the same task already running elsewhere: leave the work to it)."""
    if not _uses_locks():
        yield True
        return
    held = _try_lock(claimer)
    if held:
        _locked_on[claimer] = connection.connection
    try:
        yield held
    finally:
        _locked_on.pop(claimer, None)
        if held:
            try:
                _unlock(claimer)
            except DATABASE_ERRORS:
                pass  # the session is gone, and its locks with it


def claimer_alive(claimer: str) -> bool:
    if not claimer or not _uses_locks():
        return False
    if _try_lock(claimer):
        _unlock(claimer)
        return False
    return True


def _holds_lock(claimer: str) -> bool:
    """Whether this very session holds the claimer's lock (pg_locks shows the second int4
    key as an unsigned oid)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
            " AND classid::bigint = %s AND objid::bigint = %s AND objsubid = 2 AND granted)",
            [_LOCK_CLASS, _lock_key(claimer) & 0xFFFFFFFF],
        )
        return cursor.fetchone()[0]


# claimer -> the database connection (DB-API object) its liveness lock was taken on
_locked_on: dict[str, object] = {}


def still_mine(ids, claimer: str) -> set[int]:
    """Right before a provider call: which of `ids` this claimer may still send.

    A terminated session (PostgreSQL restarted, connections dropped) loses its liveness lock,
    so the claimer looks dead and the dispatcher or another task may take its rows over while
    it keeps sending; the death only shows on the session's next query. So every call costs
    one round trip: on the session that took the lock, "do I still hold it" (a database error
    here aborts the chunk before anything is sent). After a reconnection take the lock again
    first, then keep only the rows still claimed by us: whatever was taken over is left to
    its new claimer."""
    if not _uses_locks():
        return set(ids)
    if _locked_on.get(claimer) is connection.connection and _holds_lock(claimer):
        return set(ids)
    if not _holds_lock(claimer) and not _try_lock(claimer):
        return set()
    return set(_mine(ids, claimer).values_list("pk", flat=True))


def claim(delivery_ids, claimer: str) -> list[int]:
    """Mark the claimable ones among `delivery_ids` as `sending` by `claimer` and return them:
    pending rows, and `sending` rows whose claimer is dead (or is us, after a redelivery)."""
    now = timezone.now()
    stale = now - timedelta(seconds=app_settings.DIGEST_CLAIM_TIMEOUT)
    with transaction.atomic():
        rows = list(
            Delivery.objects.select_for_update(skip_locked=True)
            .filter(pk__in=list(delivery_ids), status__in=[S.PENDING, S.SENDING])
            .values_list("pk", "status", "claimed_by", "claimed_at")
        )
        owners = {c for _, status, c, _ in rows if status == S.SENDING}
        dead = {c for c in owners if c == claimer or not claimer_alive(c)} if _uses_locks() else {claimer}
        ids = [
            pk
            for pk, status, claimed_by, claimed_at in rows
            if status == S.PENDING or claimed_by in dead or (not _uses_locks() and claimed_at and claimed_at < stale)
        ]
        if ids:
            Delivery.objects.filter(pk__in=ids).update(
                status=S.SENDING, claimed_at=now, claimed_by=claimer, attempts=F("attempts") + 1
            )
    return ids


def _retrying(action, what: str, tries: int = 8):
    """Run a database write, reconnecting and retrying on connection errors (~1 min)."""
    for attempt in range(tries):
        try:
            return action()
        except DATABASE_ERRORS as exc:
            if attempt == tries - 1 or connection.in_atomic_block:
                raise
            log("digest.db_retry", what=what, attempt=attempt + 1, error=str(exc)[:200])
            connection.close()
            time.sleep(min(15.0, 0.5 * 2**attempt))


def _mine(ids, claimer):
    return Delivery.objects.filter(pk__in=list(ids), status=S.SENDING, claimed_by=claimer)


def _per_row(values: dict[int, object], output_field):
    """One value for all the rows, or a CASE choosing each row's (one query either way)."""
    by_value: dict[object, list[int]] = {}
    for pk, value in values.items():
        by_value.setdefault(value, []).append(pk)
    if len(by_value) == 1:
        return Value(next(iter(by_value)), output_field=output_field)
    return Case(*[When(pk__in=pks, then=Value(v)) for v, pks in by_value.items()], output_field=output_field)


def record_sent(sent: dict[int, tuple[str, int]], claimer: str) -> int:
    """delivery id -> (provider message id, id of the content it was sent with)."""
    if not sent:
        return 0
    now = timezone.now()
    if connection.vendor == "postgresql":
        # One UPDATE ... FROM unnest(): a call of readers with different digests (or
        # Postmark's one message id each) would otherwise be a CASE of a thousand branches.
        table = connection.ops.quote_name(Delivery._meta.db_table)
        pks = list(sent)
        sql = (
            f"UPDATE {table} AS d SET status = %s, sent_at = %s, provider_message_id = v.message_id,"
            " content_id = v.content_id, error = ''"
            " FROM unnest(%s::bigint[], %s::varchar[], %s::bigint[]) AS v(pk, message_id, content_id)"
            " WHERE d.id = v.pk AND d.status = %s AND d.claimed_by = %s"
        )
        params = [S.SENT, connection.ops.adapt_datetimefield_value(now), pks, [sent[pk][0] for pk in pks],
                  [sent[pk][1] for pk in pks], S.SENDING, claimer]

        def update():
            with connection.cursor() as cursor:
                cursor.execute(sql, params)
                return cursor.rowcount

        return _retrying(update, "record_sent")
    message_ids = _per_row({pk: mid for pk, (mid, _) in sent.items()}, CharField())
    contents = _per_row({pk: cid for pk, (_, cid) in sent.items()}, BigIntegerField())
    return _retrying(
        lambda: _mine(sent, claimer).update(
            status=S.SENT, sent_at=now, provider_message_id=message_ids, content_id=contents, error=""
        ),
        "record_sent",
    )


def record_failed(failed: dict[int, str], claimer: str) -> int:
    """delivery id -> error."""
    if not failed:
        return 0
    reasons = Case(*[When(pk=pk, then=Value(reason[:2000])) for pk, reason in failed.items()], output_field=CharField())
    return _retrying(lambda: _mine(failed, claimer).update(status=S.FAILED, error=reasons), "record_failed")


def record_skipped(ids, claimer: str, reason: str) -> int:
    if not ids:
        return 0
    return _retrying(lambda: _mine(ids, claimer).update(status=S.SKIPPED, error=reason), "record_skipped")


def release(ids, claimer: str, retry_at=None, error: str = "") -> int:
    """Give rows back (pending) for a later attempt, due at `retry_at`."""
    if not ids:
        return 0
    return _retrying(
        lambda: _mine(ids, claimer).update(
            status=S.PENDING, claimed_by="", claimed_at=None, queued_at=retry_at or timezone.now(), error=error[:2000]
        ),
        "release",
    )


def content_ids_for(paper_lists) -> dict[tuple[int, ...], int]:
    """The shared content row of each list of papers (created if new): paper ids -> id.
    Deliveries point at theirs when they are recorded as sent."""
    keys = {papers: DigestContent.key_for(papers) for papers in set(paper_lists)}
    content_ids = dict(DigestContent.objects.filter(key__in=keys.values()).values_list("key", "pk"))
    missing = [papers for papers, key in keys.items() if key not in content_ids]
    if missing:
        with transaction.atomic():
            # A concurrent worker may create the same content: both inserts are idempotent.
            if connection.vendor == "postgresql":
                created = _insert_contents(missing, keys)  # a chunk of personal digests: ~1,000 new ones
            else:
                DigestContent.objects.bulk_create([DigestContent(key=keys[p]) for p in missing], ignore_conflicts=True)
                created = dict(DigestContent.objects.filter(key__in=[keys[p] for p in missing]).values_list("key", "pk"))
                DigestItem.objects.bulk_create(
                    [
                        DigestItem(content_id=created[keys[papers]], paper_id=paper_id, position=position)
                        for papers in missing
                        for position, paper_id in enumerate(papers)
                    ],
                    ignore_conflicts=True,
                )
        content_ids.update(created)
    return {papers: content_ids[key] for papers, key in keys.items()}


def _insert_contents(missing, keys) -> dict[str, int]:
    """content_ids_for's inserts in two statements over arrays (what bulk_create does, without
    building a model instance per row)."""
    contents = connection.ops.quote_name(DigestContent._meta.db_table)
    items = connection.ops.quote_name(DigestItem._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f'INSERT INTO {contents} ("key", created_at) SELECT k, %s FROM unnest(%s::varchar[]) AS k'
            ' ON CONFLICT ("key") DO NOTHING',
            [connection.ops.adapt_datetimefield_value(timezone.now()), [keys[p] for p in missing]],
        )
        cursor.execute(f'SELECT "key", id FROM {contents} WHERE "key" = ANY(%s::varchar[])', [[keys[p] for p in missing]])
        created = dict(cursor.fetchall())
        rows = [(created[keys[papers]], paper_id, position) for papers in missing for position, paper_id in enumerate(papers)]
        cursor.execute(
            f"INSERT INTO {items} (content_id, paper_id, position)"
            " SELECT * FROM unnest(%s::bigint[], %s::bigint[], %s::smallint[]) ON CONFLICT DO NOTHING",
            [[r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]],
        )
    return created


def requeue_abandoned() -> int:
    """`sending` rows whose claimer is dead go back to pending (the dispatcher queues them)."""
    sending = Delivery.objects.filter(status=S.SENDING)
    reset = dict(status=S.PENDING, claimed_by="", claimed_at=None, queued_at=None)
    count = 0
    if _uses_locks():
        for claimer in set(sending.values_list("claimed_by", flat=True).distinct()):
            # Holding the dead claimer's lock while resetting keeps its redelivered task (if
            # it starts right now) from re-claiming the same rows at the same time.
            if claimer and not _try_lock(claimer):
                continue
            try:
                count += sending.filter(claimed_by=claimer).update(**reset)
            finally:
                if claimer:
                    _unlock(claimer)
    else:
        stale = timezone.now() - timedelta(seconds=app_settings.DIGEST_CLAIM_TIMEOUT)
        count = sending.filter(Q(claimed_at__lt=stale) | Q(claimed_at__isnull=True)).update(**reset)
    if count:
        log("digest.requeue_abandoned", deliveries=count)
    return count
