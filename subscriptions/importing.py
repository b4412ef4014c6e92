"""CSV import of subscribers (the format of subscriptions/csv_format.py; only `email` is
required), for operators moving their list here.

Two modes:
- double opt-in (the default): each new address becomes a pending subscriber and gets the
  same confirmation email as a sign-up on the form (subscriptions.tasks); it receives
  nothing else until its owner confirms;
- confirmed elsewhere: each new address is active at once, and the operator's note of where
  and how its consent was given (required) is written to its consent log.

Whatever the mode, an import
- is idempotent: an address already here is left as it is, so the same file twice changes
  nothing the second time and sends no second email;
- never reactivates an address that unsubscribed, bounced or complained: such rows are
  refused, with the reason;
- brings the old list's suppressions along: a row whose status is unsubscribed, bounced or
  complained is stored as such (so it is never mailed), without any email;
- refuses rows it cannot trust (bad address, unknown topic, bad value, repeated address)
  and reports each with its line number and reason.

Rows are written in batches (COPY on PostgreSQL, bulk inserts elsewhere): a hundred thousand
rows take seconds, not the minutes that one sign-up at a time would. The confirmation emails
are queued in chunks after each batch commits (subscriptions.tasks.send_import_confirmations).
"""

import csv
import json
import time
from dataclasses import dataclass, field
from datetime import datetime
from datetime import timezone as dt_timezone

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, connection, transaction
from django.db.models.functions import Lower
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from .actions import signup_choices
from .csv_format import WEEKDAYS, unprotect_cell
from .models import ConsentEvent, Subscriber, Topic, available_timezones, new_link_secret, normalize_email

S = Subscriber.Status
ENDED = {S.UNSUBSCRIBED: ConsentEvent.Kind.UNSUBSCRIBE, S.BOUNCED: ConsentEvent.Kind.BOUNCE, S.COMPLAINED: ConsentEvent.Kind.COMPLAINT}
BATCH = 5000
CONFIRMATIONS_PER_TASK = 500
TRUE, FALSE = {"yes", "true", "1", "y"}, {"no", "false", "0", "n", ""}


class Mode:
    DOUBLE_OPT_IN = "double-opt-in"
    CONFIRMED_ELSEWHERE = "confirmed-elsewhere"
    choices = [(DOUBLE_OPT_IN, "Double opt-in: send each new address a confirmation email"),
               (CONFIRMED_ELSEWHERE, "Confirmed elsewhere: consent was given on another system (note required)")]


class InvalidFile(ValueError):
    """The file as a whole cannot be imported (no email column, not text)."""


@dataclass
class Refusal:
    line: int
    email: str
    reason: str


@dataclass
class ImportReport:
    rows: int = 0
    invited: int = 0  # new, pending: a confirmation email was queued
    confirmed: int = 0  # new, active: confirmed elsewhere
    suppressed: int = 0  # new, stored as unsubscribed/bounced/complained: never mailed
    unchanged: int = 0  # already here: left as they are
    refused: list[Refusal] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def created(self) -> int:
        return self.invited + self.confirmed + self.suppressed

    def summary(self) -> str:
        return (f"{self.rows} rows: {self.invited} invited (confirmation email queued), {self.confirmed} added as confirmed "
                f"elsewhere, {self.suppressed} added as suppressed, {self.unchanged} already here and left unchanged, "
                f"{len(self.refused)} refused")


@dataclass
class Row:
    line: int
    email: str
    status: str  # the status to create the subscriber with
    topics: list[Topic]
    fields: dict
    created_at: datetime | None
    confirmed_at: datetime | None
    unsubscribed_at: datetime | None


class RowError(ValueError):
    pass


class Importer:
    def __init__(self, mode: str = Mode.DOUBLE_OPT_IN, consent_note: str = "", source: str = "", by: str = "", now=None):
        if mode not in (Mode.DOUBLE_OPT_IN, Mode.CONFIRMED_ELSEWHERE):
            raise ValueError(f"Unknown import mode {mode!r}.")
        consent_note = " ".join(consent_note.split())
        if mode == Mode.CONFIRMED_ELSEWHERE and len(consent_note) < 10:
            raise ValueError("Confirmed-elsewhere imports need a note of where and how consent was given (10 characters or more).")
        self.mode, self.consent_note, self.source, self.by = mode, consent_note, source[:200], by[:150]
        self.now = now or timezone.now()
        self.topics = {t.slug: t for t in Topic.objects.all()}
        self.timezones = set(available_timezones())
        self.report = ImportReport()
        self._seen: dict[str, int] = {}

    # --- reading ---------------------------------------------------------------------------

    def run(self, text_file, progress=None) -> ImportReport:
        started = time.perf_counter()
        reader = csv.DictReader(text_file)
        try:
            header = [(name or "").strip().lower() for name in (reader.fieldnames or [])]
        except (UnicodeDecodeError, csv.Error) as exc:
            raise InvalidFile(f"This is not a readable CSV file: {exc}") from None
        if "email" not in header:
            raise InvalidFile("The first line must name the columns, one of them `email`.")
        reader.fieldnames = header
        batch: list[Row] = []
        try:
            for record in reader:
                self.report.rows += 1
                row = self._parse(reader.line_num, record)
                if row:
                    batch.append(row)
                if len(batch) >= BATCH:
                    self._store(batch)
                    batch = []
                if progress:
                    progress(1)
        except (UnicodeDecodeError, csv.Error) as exc:
            raise InvalidFile(f"Line {reader.line_num} cannot be read: {exc}") from None
        finally:
            if batch:
                self._store(batch)
            self.report.seconds = time.perf_counter() - started
        return self.report

    def _refuse(self, line: int, email: str, reason: str) -> None:
        self.report.refused.append(Refusal(line, email[:254], reason))

    def _parse(self, line: int, record: dict) -> Row | None:
        cell = lambda name: (record.get(name) or "").strip()  # noqa: E731
        email = normalize_email(unprotect_cell(cell("email")))
        try:
            if not email:
                raise RowError("no email address")
            if len(email) > 254:
                raise RowError("the address is longer than 254 characters")
            try:
                validate_email(email)
            except ValidationError:
                raise RowError("not a valid email address") from None
            key = email.lower()
            if key in self._seen:
                raise RowError(f"the same address is on line {self._seen[key]} already")
            self._seen[key] = line
            status = self._status(cell("status"))
            return Row(
                line, email, status, self._topics(cell("topics")), self._fields(cell),
                self._when(cell("created_at"), "created_at"), self._when(cell("confirmed_at"), "confirmed_at"),
                self._when(cell("unsubscribed_at"), "unsubscribed_at"),
            )
        except RowError as exc:
            self._refuse(line, email, str(exc))
            return None

    def _status(self, value: str) -> str:
        value = value.lower()
        if value in ENDED:
            return value
        if value in ("", S.ACTIVE, S.PENDING):
            # A row that was never confirmed stays unconfirmed, whatever the mode.
            if self.mode == Mode.CONFIRMED_ELSEWHERE and value != S.PENDING:
                return S.ACTIVE
            return S.PENDING
        raise RowError(f"unknown status {value!r} (active, pending, unsubscribed, bounced or complained)")

    def _topics(self, value: str) -> list[Topic]:
        chosen = []
        for slug in value.replace(",", " ").replace(";", " ").split():
            topic = self.topics.get(slug.lower())
            if topic is None:
                raise RowError(f"unknown topic {slug[:60]!r}")
            if not topic.active:
                raise RowError(f"topic {slug!r} is not offered any more")
            if topic not in chosen:
                chosen.append(topic)
        return chosen

    def _fields(self, cell) -> dict:
        fields = {}
        frequency = cell("frequency").lower() or Subscriber.Frequency.DAILY
        if frequency not in Subscriber.Frequency.values:
            raise RowError(f"unknown frequency {frequency[:30]!r} (daily or weekly)")
        fields["frequency"] = frequency
        weekday = cell("weekday").lower() or "monday"
        if weekday in WEEKDAYS:
            fields["weekday"] = WEEKDAYS.index(weekday)
        elif weekday.isdigit() and int(weekday) < 7:
            fields["weekday"] = int(weekday)
        else:
            raise RowError(f"unknown weekday {weekday[:30]!r}")
        fields["send_hour"] = self._number(cell("send_hour"), "send_hour", 7, 0, 23)
        fields["papers_per_email"] = self._number(cell("papers_per_email"), "papers_per_email", 10, 1, 50)
        tz = cell("timezone") or "UTC"
        if tz not in self.timezones:
            raise RowError(f"unknown timezone {tz[:60]!r}")
        fields["timezone"] = tz
        paused = cell("paused").lower()
        if paused not in TRUE | FALSE:
            raise RowError(f"paused must be yes or no, not {paused[:30]!r}")
        fields["paused"] = paused in TRUE
        return fields

    @staticmethod
    def _number(value: str, name: str, default: int, low: int, high: int) -> int:
        if not value:
            return default
        if not value.isdigit() or not low <= int(value) <= high:
            raise RowError(f"{name} must be a whole number from {low} to {high}, not {value[:30]!r}")
        return int(value)

    def _when(self, value: str, name: str) -> datetime | None:
        if not value:
            return None
        try:
            parsed = parse_datetime(value)
        except ValueError:
            parsed = None
        if parsed is None:
            raise RowError(f"{name} is not a date and time (ISO 8601, e.g. 2024-05-01T09:30:00+00:00)")
        if timezone.is_naive(parsed):
            parsed = timezone.make_aware(parsed, dt_timezone.utc)
        return min(parsed, self.now)

    # --- writing ---------------------------------------------------------------------------

    @staticmethod
    def _known(batch: list[Row]) -> dict[str, str]:
        """{lowercased address: status} of the batch's addresses already here."""
        return dict(
            Subscriber.objects.annotate(key=Lower("email"))
            .filter(key__in=[row.email.lower() for row in batch]).values_list("key", "status")
        )

    def _store(self, batch: list[Row]) -> None:
        known = self._known(batch)
        new = []
        for row in batch:
            status = known.get(row.email.lower())
            if status is None:
                new.append(row)
            elif status in ENDED and row.status not in ENDED:
                self._refuse(row.line, row.email, f"this address is {status} here; an import never subscribes it again")
            else:
                self.report.unchanged += 1
        if not new:
            return
        try:
            with transaction.atomic():
                self._insert(new)
        except IntegrityError:
            # Someone signed up with one of these addresses meanwhile: one row at a time.
            for row in new:
                try:
                    with transaction.atomic():
                        self._insert([row])
                except IntegrityError:
                    self.report.unchanged += 1

    def _insert(self, rows: list[Row]) -> None:
        from . import tasks

        subscribers = [self._subscriber(row) for row in rows]
        events = [self._event(s, row) for s, row in zip(subscribers, rows)]
        topic_choices = [(s, t.pk) for s, row in zip(subscribers, rows) for t in row.topics]
        if connection.vendor == "postgresql":
            _copy_in(subscribers, topic_choices, events)
        else:
            Subscriber.objects.bulk_create(subscribers)
            through = Subscriber.topics.through
            through.objects.bulk_create([through(subscriber_id=s.pk, topic_id=topic_id) for s, topic_id in topic_choices])
            for event in events:
                event.subscriber_id = event.subscriber.pk
            ConsentEvent.objects.bulk_create(events)
        invitations = []
        for s, event in zip(subscribers, events):
            if s.status == S.PENDING:
                # The confirmation link names this sign-up, as for a sign-up on the form.
                invitations.append((s.pk, event.pk))
                self.report.invited += 1
            elif s.status == S.ACTIVE:
                self.report.confirmed += 1
            else:
                self.report.suppressed += 1
        for start in range(0, len(invitations), CONFIRMATIONS_PER_TASK):
            chunk = invitations[start : start + CONFIRMATIONS_PER_TASK]
            transaction.on_commit(lambda chunk=chunk: tasks.send_import_confirmations.delay(chunk))

    def _subscriber(self, row: Row) -> Subscriber:
        # bulk_create skips save(): the address is normalized already, the secret is set here.
        created = row.created_at or self.now
        subscriber = Subscriber(email=row.email, status=row.status, secret=new_link_secret(), created_at=created,
                                updated_at=self.now, **row.fields)
        if row.status == S.ACTIVE:
            subscriber.confirmed_at = max(row.confirmed_at or self.now, created)
        elif row.status in ENDED:
            subscriber.confirmed_at = row.confirmed_at
            subscriber.unsubscribed_at = row.unsubscribed_at or self.now
        return subscriber

    def _event(self, subscriber: Subscriber, row: Row) -> ConsentEvent:
        details = {"source": "import", "file": self.source, "line": row.line, "by": self.by,
                   **signup_choices(row.topics, subscriber.frequency)}
        if row.status == S.PENDING:
            kind = ConsentEvent.Kind.SIGNUP
        elif row.status == S.ACTIVE:
            kind = ConsentEvent.Kind.CONFIRM
            details.update(consent=self.consent_note, confirmed_elsewhere_at=_iso(row.confirmed_at))
        else:
            kind = ENDED[row.status]
            details.update(imported_status=row.status, left_at=_iso(row.unsubscribed_at))
        return ConsentEvent(subscriber=subscriber, kind=kind, created_at=self.now, user_agent="import", details=details)


def _next_ids(cursor, model, count: int) -> list[int]:
    table = model._meta.db_table
    cursor.execute(f"SELECT nextval(pg_get_serial_sequence('{table}', 'id')) FROM generate_series(1, %s)", [count])
    return [pk for (pk,) in cursor.fetchall()]


def _copy_in(subscribers: list[Subscriber], topic_choices: list[tuple[Subscriber, int]], events: list[ConsentEvent]) -> None:
    """PostgreSQL's COPY, with ids taken from the sequences first: several times faster than
    INSERT for a batch of thousands (the importer's 100,000 rows in well under a minute)."""
    fields = [f for f in Subscriber._meta.concrete_fields]
    # wrap_database_errors: a duplicate address raises Django's IntegrityError, as bulk_create would.
    with connection.cursor() as cursor, connection.wrap_database_errors:
        for subscriber, pk in zip(subscribers, _next_ids(cursor, Subscriber, len(subscribers))):
            subscriber.pk = pk
        for event, pk in zip(events, _next_ids(cursor, ConsentEvent, len(events))):
            event.pk, event.subscriber_id = pk, event.subscriber.pk
        raw = cursor.cursor  # psycopg's own cursor, under Django's wrapper
        columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
        with raw.copy(f"COPY {Subscriber._meta.db_table} ({columns}) FROM STDIN") as copy:
            for subscriber in subscribers:
                copy.write_row([getattr(subscriber, f.attname) for f in fields])
        with raw.copy(f"COPY {Subscriber.topics.through._meta.db_table} (subscriber_id, topic_id) FROM STDIN") as copy:
            for subscriber, topic_id in topic_choices:
                copy.write_row((subscriber.pk, topic_id))
        with raw.copy(f"COPY {ConsentEvent._meta.db_table} (id, subscriber_id, kind, created_at, ip_address, user_agent, details) FROM STDIN") as copy:
            for e in events:
                copy.write_row((e.pk, e.subscriber_id, e.kind, e.created_at, e.ip_address, e.user_agent, json.dumps(e.details)))


def _iso(value) -> str | None:
    return value.isoformat() if value else None


def import_csv(text_file, mode: str = Mode.DOUBLE_OPT_IN, consent_note: str = "", source: str = "", by: str = "", progress=None) -> ImportReport:
    """Import an open text file (csv module conventions: opened with newline="")."""
    return Importer(mode, consent_note, source, by).run(text_file, progress)
