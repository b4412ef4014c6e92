"""Driving a day's digests to the end without beat, and counting what came of it. Used by
the chaos scripts and their short versions in tests/test_chaos_short.py. (Django must be
set up.)"""

import time
from collections import Counter


def delivery_counts() -> Counter:
    """Deliveries per status."""
    from django.db.models import Count

    from newsletter.models import Delivery

    return Counter(dict(Delivery.objects.order_by().values_list("status").annotate(n=Count("id"))))


def duplicates_of(counts: Counter) -> int:
    """Messages beyond the first per address."""
    return sum(n - 1 for n in counts.values() if n > 1)


def drive_digests(time_limit: float, redispatch_every: float, poll: float = 0.5, progress_every: float = 10.0) -> dict:
    """The beat-less path: run the dispatcher now (as `send_digests --all --workers` does) and
    again every `redispatch_every` seconds while deliveries are open (beat's job, every 15
    minutes in production), until none is open or `time_limit` is up. A broker or database
    outage during a dispatcher run is waited out like beat would: the next run comes."""
    from django.db import connection

    from newsletter.models import Delivery
    from newsletter.tasks.digests import dispatch_now

    open_states = [Delivery.Status.PENDING, Delivery.Status.SENDING]
    started = time.monotonic()
    runs = errors = 0
    next_dispatch = started
    next_progress = started + progress_every
    open_rows = None
    while True:
        now = time.monotonic()
        if now >= next_dispatch:
            try:
                dispatch_now(ignore_hour=True)
                runs += 1
            except Exception as exc:  # Redis or PostgreSQL away: the next run picks it up
                errors += 1
                print(f"  dispatcher run failed ({type(exc).__name__}: {str(exc)[:120]}); next one in {redispatch_every:.0f} s", flush=True)
                connection.close()
            next_dispatch = now + redispatch_every
        try:
            open_rows = Delivery.objects.filter(status__in=open_states).count()
        except Exception:
            connection.close()
            open_rows = None
        if runs and open_rows == 0:
            break
        if now - started > time_limit:
            break
        if now >= next_progress:
            print(f"  {now - started:5.0f} s: {open_rows} deliveries open", flush=True)
            next_progress = now + progress_every
        time.sleep(poll)
    return {"seconds": time.monotonic() - started, "dispatcher_runs": runs, "dispatch_errors": errors, "open": open_rows}


def reset_digests() -> None:
    """Forget every delivery (for a second run over the same subscribers)."""
    from newsletter.models import Delivery, DigestContent

    Delivery.objects.all().delete()
    DigestContent.objects.all().delete()


def wait_settled(timeout: float = 45.0) -> None:
    """Until no delivery is pending or sending (the workers finished, retries included)."""
    from newsletter.models import Delivery

    open_states = [Delivery.Status.PENDING, Delivery.Status.SENDING]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not Delivery.objects.filter(status__in=open_states).exists():
            return
        time.sleep(0.1)
    raise AssertionError(f"deliveries still open: {list(Delivery.objects.values_list('status', 'error'))}")
