"""How fast the admin's first page (the operator's dashboard) opens at scale.

    .venv/bin/python bench/dashboard_bench.py [--subscribers 100000] [--deliveries 1000000] [--loads 15] [--reseed]

Uses its own database (DATABASE_URL, default postgres://postgres@127.0.0.1:5432/nl_dashboard_bench:
created, migrated and seeded on the first run or with --reseed, kept otherwise) and Redis
database (REDIS_URL, default redis://127.0.0.1:6379/11, flushed). The seed is
tests/support/dashboard_data.py (INSERT ... SELECT generate_series): 120 days of sign-ups,
confirmations, unsubscribes, bounces, complaints, scrapes and digests.

Then, through Django's test client as a logged-in superuser, it loads /admin/: once with an
empty cache (cold), then --loads times (warm), and prints the median and p95 time, the number
of SQL queries of a load and the slowest queries. The target is 300 ms. Other processes share
the CPU: the load average is printed with the results.
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.databases import database_name, default_services, load_average, open_bench_database  # noqa: E402

default_services("nl_dashboard_bench", redis_db=11)
TARGET_MS = 300


def seed(subscribers: int, deliveries: int) -> None:
    from django.core.management import call_command
    from django.db import connection

    from tests.support import dashboard_data

    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    result = dashboard_data.seed(subscribers=subscribers, deliveries=deliveries)
    seeded = time.perf_counter() - started
    # What autovacuum does on a live database: statistics and the visibility map (so the
    # planner may answer counts from indexes alone).
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    print(f"seeded {result.subscribers:,} subscribers and {result.deliveries:,} deliveries in {seeded:.1f} s "
          f"(+ VACUUM ANALYZE {time.perf_counter() - started - seeded:.1f} s)")


def counts() -> dict:
    from newsletter.models import Delivery
    from subscriptions.models import ConsentEvent, Subscriber

    return {"subscribers": Subscriber.objects.count(), "deliveries": Delivery.objects.count(), "consent events": ConsentEvent.objects.count()}


def time_loads(loads: int) -> None:
    from django.contrib.auth.models import User
    from django.core.cache import cache
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    user, _ = User.objects.get_or_create(username="bench-operator", defaults={"is_staff": True, "is_superuser": True})
    client = Client()
    client.force_login(user)

    def load():
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            response = client.get("/admin/")
            elapsed = (time.perf_counter() - started) * 1000
        assert response.status_code == 200, response.status_code
        assert b'id="panel-digests"' in response.content and b"data-threshold" in response.content
        return elapsed, queries.captured_queries, len(response.content)

    cache.clear()
    cold, _, _ = load()
    timings, last_queries, size = [], [], 0
    for _ in range(loads):
        elapsed, last_queries, size = load()
        timings.append(elapsed)
    timings.sort()
    p95 = timings[min(len(timings) - 1, round(0.95 * (len(timings) - 1)))]
    median = statistics.median(timings)
    print(f"cold load (empty cache): {cold:.0f} ms")
    print(f"warm loads: {loads}, median {median:.0f} ms, p95 {p95:.0f} ms, fastest {timings[0]:.0f} ms "
          f"(target {TARGET_MS} ms: {'met' if p95 < TARGET_MS else 'NOT met'})")
    print(f"queries per load: {len(last_queries)}; page size {size / 1024:.0f} KiB")
    for query in sorted(last_queries, key=lambda q: -float(q["time"]))[:5]:
        print(f"  {float(query['time']) * 1000:6.1f} ms  {query['sql'][:110]}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--deliveries", type=int, default=1_000_000)
    parser.add_argument("--loads", type=int, default=15)
    parser.add_argument("--reseed", action="store_true", help="drop the bench database and seed it again")
    args = parser.parse_args()

    open_bench_database(args.reseed, lambda: seed(args.subscribers, args.deliveries))
    print(f"database {database_name()}: " + ", ".join(f"{n:,} {what}" for what, n in counts().items()))
    print(f"load average before timing: {load_average()}")
    time_loads(args.loads)


if __name__ == "__main__":
    main()
