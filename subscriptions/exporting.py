"""CSV export of subscribers with their topics, preferences, status and dates (the format of
subscriptions/csv_format.py), streamed in chunks so a large list never sits in memory."""

import csv
from collections.abc import Iterable, Iterator

from .csv_format import COLUMNS, WEEKDAYS, protect_cell
from .models import Subscriber

CHUNK = 2000


def _when(value) -> str:
    return value.isoformat() if value else ""


def rows(queryset) -> Iterator[list[str]]:
    """The header, then one row per subscriber of `queryset` (in id order)."""
    yield COLUMNS
    subscribers = queryset.order_by("pk").prefetch_related("topics").iterator(chunk_size=CHUNK)
    for s in subscribers:
        yield [
            protect_cell(s.email), s.status, " ".join(sorted(t.slug for t in s.topics.all())), s.frequency,
            WEEKDAYS[s.weekday], str(s.send_hour), s.timezone, str(s.papers_per_email), "yes" if s.paused else "no",
            _when(s.created_at), _when(s.confirmed_at), _when(s.unsubscribed_at),
        ]


class _Echo:
    """A file-like object whose write() returns the line, for streaming responses."""

    def write(self, value: str) -> str:
        return value


def csv_lines(queryset=None) -> Iterable[str]:
    writer = csv.writer(_Echo())
    return (writer.writerow(row) for row in rows(Subscriber.objects.all() if queryset is None else queryset))


def write_csv(out, queryset=None, progress=None) -> int:
    """Write the CSV to an open text file; returns the number of subscribers written."""
    writer = csv.writer(out)
    written = -1
    for row in rows(Subscriber.objects.all() if queryset is None else queryset):
        writer.writerow(row)
        written += 1
        if progress and written:
            progress(1)
    return written
