"""Per-day aggregates kept in the cache, so the dashboard counts a million deliveries once and
afterwards only the days that can still change.

A day is *closed* once nothing can change its figures any more: the consent log is
append-only, so yesterday's sign-ups are final; a delivery's status settles within
DIGEST_GIVE_UP_AFTER_DAYS (after that a pending one is marked failed). Closed days are read
from the cache (kept for CLOSED_DAY_TTL, then counted again); open days are counted on every
load, with the missing closed days, in one query over one date range. listmonk keeps its
dashboard in materialized views for the same reason.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Callable

from django.core.cache import cache

if TYPE_CHECKING:
    from .metrics import Window

# v2: the consent log's days count topic leaves too (days cached by v1 lack them).
PREFIX = "dashboard:v2"
CLOSED_DAY_TTL = 2 * 24 * 3600
# Slow-moving figures recomputed at most this often (the subscriber timeline, topic counts).
SNAPSHOT_TTL = 15 * 60


def per_day(name: str, window: Window, open_from: date, count: Callable[[date, date], dict[date, dict]]) -> dict[date, dict]:
    """{day: figures} for every day of the window. `count(first, last)` runs the query for a
    date range and returns figures for the days that have any (other days are empty)."""
    closed = [day for day in window.dates if day < open_from]
    keys = {f"{PREFIX}:{name}:{day.isoformat()}": day for day in closed}
    figures = {keys[key]: value for key, value in cache.get_many(list(keys)).items()}
    missing = [day for day in closed if day not in figures]
    counted = count(min(missing) if missing else max(open_from, window.first), window.today)
    for day in window.dates:
        if day not in figures:
            figures[day] = counted.get(day, {})
    if missing:
        cache.set_many({f"{PREFIX}:{name}:{day.isoformat()}": figures[day] for day in missing}, CLOSED_DAY_TTL)
    return figures


def snapshot(name: str, compute: Callable[[], object], refresh: bool = False):
    """`compute()`'s result, computed at most once per SNAPSHOT_TTL (or now, if `refresh`)."""
    key = f"{PREFIX}:{name}"
    value = None if refresh else cache.get(key)
    if value is None:
        value = compute()
        cache.set(key, value, SNAPSHOT_TTL)
    return value
