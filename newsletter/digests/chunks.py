"""One chunk of deliveries: claim them, choose each digest's papers, render each distinct
digest once, send it to its recipients in provider-sized calls, record each call.

Readers who share a digest (same papers, notes and topics) get it in calls of its own. A
personal ranking makes most digests different; then each reader's papers are assembled from
the cached paper blocks and become their merge values in one personal shell per kind, so a
provider call still carries a whole slice of readers (or, for SMTP, each message is spliced
from one prebuilt shell): see `ChunkRun._plan`.

The work per chunk is a handful of queries whatever its size (claim, load, papers already
sent, contents, one check and one record per provider call); nothing here queries per
subscriber.
"""

import gc
import time
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import NamedTuple

import redis
from celery.utils.time import get_exponential_backoff_interval
from django.utils import timezone

from newsletter.app_settings import app_settings
from newsletter.logs import EventLog
from newsletter.models import Delivery
from subscriptions import actions, bounces
from subscriptions.models import Subscriber

from . import alerts, claims, selection
from .links import Recipient
from .outbox import MergeKeysRefused, Outbox, Outcome, SendAborted
from .providers import DATABASE_ERRORS, ConfigurationError
from .ratelimit import provider_bucket
from .rendering import renderer

log = EventLog(__name__)

SYSTEM = actions.Origin(user_agent="digest sender")


@dataclass
class Item:
    """One claimed delivery: whom to send it to, whom to choose papers for."""

    recipient: Recipient
    reader: selection.Reader
    receiving: bool

    @property
    def delivery_id(self) -> int:
        return self.recipient.delivery_id

    @property
    def kind(self) -> str:
        return self.reader.kind


class Digest(NamedTuple):
    """What makes two readers' digests the same: papers, notes, kind and the reader's topics."""

    paper_ids: tuple[int, ...]
    notes: tuple[tuple[int, str], ...]
    kind: str
    topic_ids: tuple[int, ...]


@dataclass
class ChunkReport:
    requested: int = 0
    claimed: int = 0
    sent: int = 0
    skipped: int = 0
    failed: int = 0
    released: int = 0
    digests: int = 0
    calls: int = 0
    seconds: float = 0.0
    busy: bool = False

    def add(self, other: "ChunkReport") -> None:
        for name, value in asdict(other).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                setattr(self, name, getattr(self, name) + value)


class RetryLater(Exception):
    """The chunk's unsent deliveries are pending again; run the chunk again in `countdown` s."""

    def __init__(self, countdown: float, reason: str):
        super().__init__(reason)
        self.countdown = countdown


def retry_countdown(attempt: int, retry_after: float | None = None) -> float:
    """Seconds until the chunk's next attempt: Celery's exponential backoff with full jitter
    (what a task's retry_backoff and retry_jitter do; counted in milliseconds, as Celery's
    helper works in whole units), but never sooner than the provider asked (Retry-After)."""
    cap_ms = int(app_settings.DIGEST_RETRY_BACKOFF_MAX * 1000)
    delay = get_exponential_backoff_interval(int(app_settings.DIGEST_RETRY_BACKOFF * 1000), attempt, cap_ms, full_jitter=True) / 1000
    if retry_after:
        delay = max(delay, min(retry_after, app_settings.DIGEST_RETRY_BACKOFF_MAX))
    return delay


def load_items(delivery_ids) -> list[Item]:
    rows = Delivery.objects.filter(pk__in=list(delivery_ids)).values_list(
        "pk", "kind", "digest_date", "subscriber_id", "subscriber__email", "subscriber__secret",
        "subscriber__papers_per_email", "subscriber__status", "subscriber__paused",
    )
    rows = list(rows)
    topics = selection.topics_of({row[3] for row in rows})
    items = []
    for pk, kind, digest_date, sid, email, secret, per_email, status, paused in rows:
        topic_ids, topic_names = topics.get(sid, ((), ()))
        items.append(
            Item(
                recipient=Recipient(pk, sid, email, secret, topic_names, digest_date),
                reader=selection.Reader(sid, kind, digest_date, topic_ids, per_email),
                receiving=status == Subscriber.Status.ACTIVE and not paused,
            )
        )
    return items


class ChunkRun:
    def __init__(self, claimer: str, report: ChunkReport):
        self.claimer = claimer
        self.report = report
        self.open_ids: set[int] = set()
        self.subscriber_of: dict[int, int] = {}
        # Sent but not yet recorded: one-by-one sending records every `slice_size` messages.
        self.unrecorded: dict[int, tuple[str, int]] = {}
        self.bucket = None  # the provider's rate limit (ratelimit.provider_bucket)

    def run(self, delivery_ids) -> None:
        items = load_items(delivery_ids)
        self.subscriber_of = {i.delivery_id: i.recipient.subscriber_id for i in items}
        gone = [i.delivery_id for i in items if not i.receiving]
        self._skip(gone, "no longer receiving digests")
        items = [i for i in items if i.receiving]

        pools, reasons = selection.pools_for({i.kind for i in items})
        waiting = defaultdict(list)
        for kind, reason in reasons.items():
            waiting[reason].extend(i.delivery_id for i in items if i.kind == kind)
        for reason, ids in waiting.items():
            # Not now: they stay pending and the dispatcher queues them again later.
            self._release(ids, error=reason)
            log("digest.chunk_waiting", deliveries=len(ids), reason=reason)
        items = [i for i in items if i.kind in pools]

        selection.get_ranking().refresh([i.recipient.subscriber_id for i in items])
        # Each digest's papers, chosen afresh on every attempt (what was sent is what counts).
        # A digest shows each paper's topics among its reader's and the ranking's notes:
        # readers of the same papers, notes and topics share one digest. The content (what was
        # sent) is the papers alone, shared whatever the topics and notes.
        groups: dict[Digest, list[Recipient]] = defaultdict(list)
        nothing_new = []
        for item, choice in zip(items, selection.choose([i.reader for i in items], pools)):
            if choice:
                notes = tuple((pk, note) for pk, note in choice.notes_key if note)
                groups[Digest(tuple(choice), notes, item.kind, tuple(sorted(item.reader.topic_ids)))].append(item.recipient)
            else:
                nothing_new.append(item.delivery_id)
        self._skip(nothing_new, "nothing new")
        self.report.digests += len(groups)
        if not groups:
            return
        contents = claims.content_ids_for(digest.paper_ids for digest in groups)
        self.bucket = provider_bucket()
        with Outbox() as outbox:
            shared, personal = self._plan(outbox, groups, pools)
            for digest, recipients in shared.items():
                self._send_shared(outbox, digest, recipients, pools[digest.kind], contents[digest.paper_ids])
            for kind, copies in personal.items():
                self._send_personal(outbox, kind, copies, pools[kind], contents)
            self.flush()

    def _plan(self, outbox: Outbox, groups, pools) -> tuple[dict, dict]:
        """(digest -> its recipients, for calls of their own; kind -> [((recipient, digest),
        JSON chars of their values)], for personal batches). A digest few readers share costs
        a call of its own for only a few messages: when a chunk has many such, their readers go
        out together, each with their papers as merge values (a provider call then carries
        many different digests). A few of them keep a call each, as do readers whose papers
        are more than the provider takes as one recipient's values."""
        small = defaultdict(list)
        for digest, recipients in groups.items():
            if len(recipients) < app_settings.DIGEST_SHARED_MIN:
                small[digest.kind].append(digest)
        shared = dict(groups)
        personal = {}
        for kind, digests in small.items():
            if len(digests) < app_settings.DIGEST_PERSONAL_MIN:
                continue
            copies = []
            for digest in digests:
                chars = renderer.section_json_chars(digest.paper_ids, pools[kind], kind, digest.topic_ids, dict(digest.notes))
                if outbox.takes_personal(chars):
                    copies.extend(((recipient, digest), chars) for recipient in shared.pop(digest))
            if copies:
                personal[kind] = copies
        return shared, personal

    def _send_shared(self, outbox: Outbox, digest: Digest, recipients, pool, content_id: int) -> None:
        rendered = renderer.render(digest.paper_ids, pool, digest.kind, digest.topic_ids, dict(digest.notes))
        content_of = dict.fromkeys((r.delivery_id for r in recipients), content_id)
        for start in range(0, len(recipients), outbox.slice_size):
            self._call(outbox, recipients[start : start + outbox.slice_size], lambda batch: outbox.send(rendered, batch),
                       content_of, lambda batch: digest.paper_ids)

    def _send_personal(self, outbox: Outbox, kind: str, copies, pool, contents) -> None:
        """`copies` (from _plan) in personal batches. Each call's sections are built for it
        and dropped after it: a chunk's all at once held about 70 MB (a thousand readers'
        papers, as text and as JSON) through every call."""
        shell = renderer.personal_shell(kind)
        digest_of = {recipient.delivery_id: digest for (recipient, digest), _ in copies}
        content_of = {pk: contents[digest.paper_ids] for pk, digest in digest_of.items()}

        def papers_of(batch):
            return tuple(sorted({pk for r in batch for pk in digest_of[r.delivery_id].paper_ids}))

        for batch in outbox.personal_slices(shell, copies):
            sections = {}
            for _, digest in batch:
                if digest not in sections:
                    sections[digest] = renderer.section(digest.paper_ids, pool, kind, digest.topic_ids, dict(digest.notes))

            def send(recipients, sections=sections):
                return outbox.send_personal(shell, [(r, sections[digest_of[r.delivery_id]]) for r in recipients])

            self._call(outbox, [recipient for recipient, _ in batch], send, content_of, papers_of)
            del sections, send  # not held while the next call's are built

    def _call(self, outbox: Outbox, batch: list[Recipient], send, content_of: dict[int, int], papers_of) -> None:
        """`send(batch)`: one provider call (or one-by-one sending), recorded. Recipients whose
        own values the merge-key check refuses fail alone; the rest goes on without them."""
        self.bucket.acquire(len(batch))
        while batch:
            batch = self._still_mine(batch)
            if not batch:
                return
            self.report.calls += 1
            try:
                outcome = send(batch)
            except SendAborted as aborted:
                self._settle(aborted.done, content_of)
                self.flush()
                raise
            except MergeKeysRefused as refused:
                culprits = refused.culprits or set()
                refused_batch = [r for r in batch if r.delivery_id in culprits] or batch
                self._refuse(refused_batch, papers_of(refused_batch), refused)
                refused_ids = {r.delivery_id for r in refused_batch}
                batch = [r for r in batch if r.delivery_id not in refused_ids]
                continue
            self._settle(outcome, content_of)
            # A provider call is recorded at once; single messages every `slice_size`.
            if outbox.capability.batch or len(self.unrecorded) >= outbox.slice_size:
                self.flush()
            return

    def flush(self) -> None:
        """Record what was sent. Until that succeeds the rows stay in `unrecorded` (and are
        never given back as unsent)."""
        if self.unrecorded:
            self.report.sent += claims.record_sent(self.unrecorded, self.claimer)
            self.open_ids -= set(self.unrecorded)
            self.unrecorded = {}

    def _still_mine(self, batch: list[Recipient]) -> list[Recipient]:
        """The recipients whose rows this claimer still holds (claims.still_mine)."""
        mine = claims.still_mine([r.delivery_id for r in batch], self.claimer)
        if len(mine) < len(batch):
            lost = {r.delivery_id for r in batch} - mine
            self.open_ids -= lost
            log("digest.claim_lost", level=30, claimer=self.claimer, deliveries=len(lost))
        return [r for r in batch if r.delivery_id in mine]

    def _settle(self, outcome: Outcome, content_of: dict[int, int]) -> None:
        self.unrecorded.update({pk: (message_id, content_of[pk]) for pk, message_id in outcome.sent.items()})
        failures = {**outcome.failed, **outcome.refused}
        self.report.failed += claims.record_failed(failures, self.claimer)
        self.open_ids -= set(failures)
        for delivery_id, reason in outcome.refused.items():
            subscriber = Subscriber(pk=self.subscriber_of[delivery_id])
            actions.suppress(subscriber, Subscriber.Status.BOUNCED, SYSTEM, reason="refused by provider", error=reason[:500])
        if outcome.failed:
            # A message failed without a named cause counts like a soft bounce.
            bounces.count_send_failures([self.subscriber_of[pk] for pk in outcome.failed], SYSTEM)
        if outcome.refused or outcome.failed:
            log("digest.recipients_failed", refused=len(outcome.refused), failed=len(outcome.failed))

    def _refuse(self, batch: list[Recipient], paper_ids, refused: MergeKeysRefused) -> None:
        """Nothing of `batch` was sent: the content holds merge keys the templates did not put
        there. They fail for good (the same papers would be refused on every attempt) without
        counting against the readers; the admins are told."""
        self.report.failed += claims.record_failed({r.delivery_id: str(refused)[:1000] for r in batch}, self.claimer)
        self.open_ids -= {r.delivery_id for r in batch}
        unexpected = ",".join(key if count == 1 else f"{key}*{count}" for key, count in sorted(refused.unexpected.items()))
        log("digest.merge_keys_refused", level=40, claimer=self.claimer, deliveries=len(batch),
            papers=",".join(map(str, paper_ids)), unexpected=unexpected[:1000])
        alerts.merge_keys_refused(paper_ids, refused.unexpected, len(batch))

    def _skip(self, ids, reason: str) -> None:
        if ids:
            self.report.skipped += claims.record_skipped(ids, self.claimer, reason)
            self.open_ids -= set(ids)

    def _release(self, ids, retry_at=None, error: str = "") -> None:
        if ids:
            self.report.released += claims.release(ids, self.claimer, retry_at, error)
            self.open_ids -= set(ids)


@contextmanager
def collector_paused():
    """Python's cyclic garbage collector off while a chunk is sent. A chunk holds a thousand
    readers' values and sections until its calls are made; the collector moved them to its
    oldest generation and so ran a full collection (every object of a worker: ~150 ms, finding
    nothing) every other chunk, about a tenth of a unique digest's CPU. Nearly all of it is
    freed by reference counting when the chunk ends; what forms cycles waits for the next
    collection after it."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def send_chunk(delivery_ids, claimer: str, attempt: int = 0) -> ChunkReport:
    """Send what can be sent of these deliveries. Raises RetryLater after a transient failure
    (the unsent ones are pending again, due after the backoff)."""
    with collector_paused():
        return _send_chunk(delivery_ids, claimer, attempt)


def _send_chunk(delivery_ids, claimer: str, attempt: int) -> ChunkReport:
    started = time.perf_counter()
    report = ChunkReport(requested=len(delivery_ids))
    try:
        with claims.liveness_lock(claimer) as ours:
            if not ours:
                report.busy = True
                return report
            claimed = claims.claim(delivery_ids, claimer)
            report.claimed = len(claimed)
            run = ChunkRun(claimer, report)
            run.open_ids = set(claimed)
            try:
                if claimed:
                    run.run(claimed)
            except SendAborted as aborted:
                error = aborted.error
                if isinstance(error, ConfigurationError):
                    log("digest.provider_configuration_error", level=40, claimer=claimer, error=str(error))
                    countdown = app_settings.DIGEST_RETRY_BACKOFF_MAX
                else:
                    countdown = retry_countdown(attempt, getattr(error, "retry_after", None))
                _give_back(run, countdown, str(error))
                raise RetryLater(countdown, str(error)) from aborted
            except (redis.RedisError, *DATABASE_ERRORS) as exc:
                countdown = retry_countdown(attempt)
                _give_back(run, countdown, f"{type(exc).__name__}: {exc}")
                raise RetryLater(countdown, f"{type(exc).__name__}: {exc}") from exc
            except BaseException as exc:
                _give_back(run, 0, f"{type(exc).__name__}: {exc}")
                raise
            # Anything still open was neither sent nor settled (should not happen): give it back.
            _give_back(run, 0, "left open")
    finally:
        report.seconds = time.perf_counter() - started
        log("digest.chunk", claimer=claimer, attempt=attempt, **{k: v for k, v in asdict(report).items() if k != "busy"}, busy=report.busy)
    return report


def _give_back(run: ChunkRun, countdown: float, error: str) -> None:
    run.open_ids -= set(run.unrecorded)
    try:
        run.flush()  # what was sent is recorded first: it must never be given back
        if run.open_ids:
            run._release(list(run.open_ids), timezone.now() + timedelta(seconds=countdown), error)
    except DATABASE_ERRORS:
        # The database is away: the rows stay `sending` under our claim, and our lock goes
        # with the session, so the retry (same claimer) or the dispatcher takes them over.
        pass
