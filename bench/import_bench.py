"""How fast a CSV of subscribers imports (subscriptions/importing.py), as `manage.py
import_subscribers` runs it.

    .venv/bin/python bench/import_bench.py [--rows 100000] [--confirmed-elsewhere]

Uses its own database (DATABASE_URL, default postgres://postgres@127.0.0.1:5432/nl_import_bench,
dropped, created and migrated on every run) and Redis database (REDIS_URL, default
redis://127.0.0.1:6379/10, flushed before and after: the confirmation emails are queued there
for workers that this bench does not start). It writes a CSV of N addresses with topics and
preferences, a few hundred of them broken on purpose, then imports it twice: the first run
adds every good row, the second must change nothing. The target is 100,000 rows in under a
minute. Other processes share the CPU: the load average is printed with the results.
"""

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.databases import create_database, default_services  # noqa: E402

default_services("nl_import_bench", redis_db=10)
TARGET_SECONDS = 60
SLUGS = ["llm-reasoning", "agents", "multimodal", "nlp-foundations", "code", "reinforcement-learning", "efficiency", "robotics"]
ZONES = ["UTC", "Europe/Paris", "America/New_York", "Asia/Tokyo", "Europe/Berlin"]


def write_file(path: Path, rows: int) -> int:
    """N rows; every 500th is broken (bad address or unknown topic). Returns how many are good."""
    rng = random.Random(13)
    good = 0
    with path.open("w", encoding="utf-8") as out:
        out.write("email,topics,frequency,timezone,send_hour\n")
        for i in range(rows):
            topics = " ".join(rng.sample(SLUGS, rng.randint(1, 3)))
            if i % 500 == 250:
                out.write(f"broken-{i}.example.org,{topics},daily,UTC,7\n")
            elif i % 500 == 499:
                out.write(f"reader{i}@example.org,knitting,daily,UTC,7\n")
            else:
                good += 1
                out.write(f"reader{i}@example.org,{topics},{rng.choice(['daily', 'weekly'])},{rng.choice(ZONES)},{rng.randint(5, 9)}\n")
    return good


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--confirmed-elsewhere", action="store_true")
    args = parser.parse_args()

    create_database(os.environ["DATABASE_URL"])
    import django

    django.setup()
    import redis
    from django.conf import settings
    from django.core.management import call_command

    from subscriptions.importing import Mode, import_csv
    from subscriptions.models import ConsentEvent, Subscriber

    call_command("migrate", verbosity=0)
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.flushdb()
    mode = Mode.CONFIRMED_ELSEWHERE if args.confirmed_elsewhere else Mode.DOUBLE_OPT_IN
    note = "Bench: consent given on the old list's double opt-in form"
    try:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "list.csv"
            good = write_file(path, args.rows)
            print(f"{args.rows:,} rows ({good:,} good), {path.stat().st_size / 1e6:.1f} MB, mode {mode}")
            print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
            for attempt in ("first import", "same file again"):
                started = time.perf_counter()
                with path.open(encoding="utf-8", newline="") as text:
                    report = import_csv(text, mode, note, source=path.name, by="bench")
                seconds = time.perf_counter() - started
                print(f"{attempt}: {seconds:.1f} s, {args.rows / seconds:,.0f} rows/s: {report.summary()}")
                if attempt == "first import":
                    assert report.created == good and len(report.refused) == args.rows - good, report.summary()
                    met = "met" if seconds < TARGET_SECONDS * args.rows / 100_000 else "NOT met"
                    print(f"  target: 100,000 rows in {TARGET_SECONDS} s: {met}")
                else:
                    assert report.created == 0 and report.unchanged == good, report.summary()
        queued = sum(client.llen(key) for key in client.scan_iter(match="*") if client.type(key) == b"list")
        print(f"stored: {Subscriber.objects.count():,} subscribers, {ConsentEvent.objects.count():,} consent events, "
              f"{Subscriber.topics.through.objects.count():,} topic choices; {queued:,} confirmation tasks queued on Redis")
    finally:
        client.flushdb()


if __name__ == "__main__":
    main()
