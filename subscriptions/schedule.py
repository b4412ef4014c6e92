"""When a reader's digests go out, in their own words: their timezone, their hour, their day.

The dispatcher (newsletter/digests/dispatch.py) runs every quarter of an hour and sends each
reader's digest once their local hour has reached their send hour (on their weekday, for a
weekly digest); this module only answers "when is the next one?" for the pages."""

import zoneinfo
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils import timezone

from .models import Subscriber


@dataclass(frozen=True)
class NextDigest:
    at: datetime  # aware, in the reader's timezone
    soon: bool  # due already: the dispatcher's next run (within a quarter of an hour) sends it
    zone: str

    def __str__(self) -> str:
        if self.soon:
            return f"within the next quarter of an hour ({self.zone} time {self.at:%H:%M})"
        day = f"{self.at:%A} {self.at.day} {self.at:%B}"
        return f"around {self.at:%H:%M} on {day} ({self.zone} time)"


def next_digest(subscriber: Subscriber, now=None) -> NextDigest:
    """The next time the reader's digest goes out (if the day's papers hold something new)."""
    now = now or timezone.now()
    try:
        zone = zoneinfo.ZoneInfo(subscriber.timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        zone = zoneinfo.ZoneInfo("UTC")
    local = now.astimezone(zone)
    day = local.date()
    weekly = subscriber.frequency == Subscriber.Frequency.WEEKLY
    if local.hour >= subscriber.send_hour and (not weekly or day.weekday() == subscriber.weekday) and not subscriber.deliveries.filter(digest_date=day).exists():
        return NextDigest(local.replace(second=0, microsecond=0), True, str(zone))
    day += timedelta(days=1) if local.hour >= subscriber.send_hour or subscriber.deliveries.filter(digest_date=day).exists() else timedelta(0)
    while weekly and day.weekday() != subscriber.weekday:
        day += timedelta(days=1)
    at = datetime(day.year, day.month, day.day, subscriber.send_hour, tzinfo=zone)
    return NextDigest(at, False, str(zone))
