"""Worker crashes and broker restarts during a send: nothing lost, duplicates bounded.

20,000 active subscribers (and some unsubscribed or paused ones who must get nothing), a good
scrape of the sample trending page, a pool of real Celery workers on Redis and PostgreSQL
sending through Anymail's Mailgun backend to a fake Mailgun on loopback that takes
`--latency` seconds per call. The digests are sent twice over the same subscribers:

1. undisturbed, for the baseline duration;
2. while, at random moments, a whole worker (main process and pool) is SIGKILLed and started
   again (`--kills`, at least five), Redis is shut down without saving and started again
   once (queued tasks are lost), and every PostgreSQL session of this database is
   terminated once (as a restart would; other databases on the server are left alone).

Both runs use the beat-less path: the dispatcher is run by this script now and again every
`--redispatch-every` seconds while deliveries are open (what beat does every 15 minutes), with
DIGEST_REQUEUE_AFTER shortened to `--requeue-after`.

Verdict: per recipient, what the fake provider accepted: missing 0, nobody who must get
nothing got anything, duplicates at most the messages of the calls in flight when a kill
landed (and only to their recipients), every delivery recorded as sent; the durations of
both runs are printed side by side.

    .venv/bin/python chaos/worker_crash.py [--subscribers 20000] [--workers 2] [--kills 5]

WARNING: restarting Redis empties every Redis db on 127.0.0.1:6379 for everyone using it.
"""

import argparse
import random
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from chaos.support import drop_database_connections, restart_redis, verdict  # noqa: E402
from tests.support.databases import base_env, fresh_database, setup_django  # noqa: E402
from tests.support.digest_runs import delivery_counts, drive_digests, duplicates_of, reset_digests  # noqa: E402
from tests.support.fake_providers import ChaosMailgun  # noqa: E402
from tests.support.processes import CeleryWorker  # noqa: E402
from tests.support.seeding import seed_scrape, seed_subscribers  # noqa: E402

DB_NAME = "nl_chaos_crash"
REDIS_DB = 5


@dataclass
class Event:
    kind: str  # "kill", "redis", "postgres"
    due: float  # seconds after the run started
    at: float | None = None  # monotonic time it happened
    open_rows: int | None = None  # deliveries open just before
    detail: str = ""
    in_flight: list = field(default_factory=list)


def plan_events(rng: random.Random, kills: int, window: float, gap: float) -> list[Event]:
    """The disturbances at random moments in the first `window` seconds, `gap` apart."""
    kinds = ["kill"] * kills + ["redis", "postgres"]
    rng.shuffle(kinds)
    times = sorted(rng.uniform(0.05, 1.0) * window for _ in kinds)
    for i in range(1, len(times)):
        times[i] = max(times[i], times[i - 1] + gap)
    return [Event(kind, due) for kind, due in zip(kinds, times)]


class Disturber(threading.Thread):
    def __init__(self, events, workers, rng):
        super().__init__(daemon=True)
        self.events, self.workers, self.rng = events, workers, rng
        self.started_at = None
        self.done = threading.Event()
        self.error = None

    def run(self):
        from django.db import connection

        from newsletter.models import Delivery

        try:
            for event in self.events:
                while time.monotonic() < self.started_at + event.due and not self.done.is_set():
                    time.sleep(0.05)
                if self.done.is_set():
                    return
                try:
                    event.open_rows = Delivery.objects.filter(status__in=["pending", "sending"]).count()
                except Exception:
                    connection.close()
                event.at = time.monotonic()
                if event.kind == "kill":
                    worker = self.rng.choice(self.workers)
                    worker.kill()
                    restart = time.monotonic()
                    worker.start()
                    event.detail = f"SIGKILL {worker.name} (main process and pool), back after {time.monotonic() - restart:.1f} s"
                elif event.kind == "redis":
                    event.detail = f"Redis shut down (nosave) and started again, away {restart_redis(down_for=1.0):.1f} s"
                else:
                    event.detail = f"terminated {drop_database_connections(DB_NAME)} PostgreSQL sessions of {DB_NAME}"
                print(f"  {event.at - self.started_at:5.1f} s  {event.detail} ({event.open_rows} deliveries open)", flush=True)
        except Exception as exc:  # reported in the verdict
            self.error = exc
        finally:
            connection.close()


def explain_duplicates(fake, addresses, events, started_at) -> None:
    """Which disturbance came last before the first copy of each unexplained duplicate."""
    first_copies: dict[str, list] = {}
    for call in fake.calls:
        if call.accepted:
            for r in call.recipients:
                if r.lower() in addresses:
                    first_copies.setdefault(r.lower(), []).append(call)
    by_event: dict[str, int] = {}
    for address, calls in first_copies.items():
        first, second = calls[0], calls[1]
        before = [e for e in events if e.at is not None and e.at <= first.started]
        name = f"{before[-1].kind} at {before[-1].at - started_at:.1f} s" if before else "before any disturbance"
        key = f"first copy {first.started - started_at:.0f} s (call {first.number}, answered {'yes' if getattr(first, 'finished', None) else 'no'}), after {name}; again at {second.started - started_at:.0f} s"
        by_event[key] = by_event.get(key, 0) + 1
    print("  unexplained duplicates:")
    for key, count in sorted(by_event.items(), key=lambda kv: -kv[1])[:15]:
        print(f"    {count:5d}  {key}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--chunk-size", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--rate", type=float, default=300, help="DIGEST_RATE_LIMIT, messages per second")
    parser.add_argument("--latency", type=float, default=0.3, help="seconds the fake provider takes per call")
    parser.add_argument("--redispatch-every", type=float, default=5)
    parser.add_argument("--requeue-after", type=int, default=15)
    parser.add_argument("--time-limit", type=float, default=600, help="seconds per run")
    parser.add_argument("--seed", type=int, default=20261124)
    args = parser.parse_args()
    if args.kills < 5:
        parser.error("--kills must be at least 5")
    rng = random.Random(args.seed)
    script_started = time.monotonic()

    fake = ChaosMailgun(latency=args.latency, keep_messages=False).start()
    env = base_env(
        DB_NAME, REDIS_DB, **fake.env(),
        DIGEST_CHUNK_SIZE=args.chunk_size, DIGEST_BATCH_SIZE=args.batch_size, DIGEST_RATE_LIMIT=args.rate,
        DIGEST_SEND_TIMEOUT=10, DIGEST_RETRY_BACKOFF=0.5, DIGEST_RETRY_BACKOFF_MAX=5,
        DIGEST_REQUEUE_AFTER=args.requeue_after, CONN_MAX_AGE=60,
    )
    fresh_database(env)
    setup_django(env)
    import redis

    seed_scrape()
    expected, excluded = seed_subscribers(args.subscribers, seed=args.seed)
    print(f"{args.subscribers} subscribers: {len(expected)} must get one digest, {len(excluded)} unsubscribed or paused must get none")
    workers = [CeleryWorker(env, f"crash{i}", args.concurrency).start() for i in range(args.workers)]
    print(f"{args.workers} workers x {args.concurrency} processes; chunks of {args.chunk_size}, calls of {args.batch_size}, "
          f"{args.rate:.0f} messages/s, {args.latency:.2f} s per provider call")

    print("\n1. Undisturbed run")
    baseline = drive_digests(args.time_limit, args.redispatch_every)
    base_counts = fake.per_recipient()
    base_missing = len(expected - set(base_counts))
    base_dups = duplicates_of(base_counts)
    print(f"  {baseline['seconds']:.1f} s, {len(fake.calls)} provider calls, missing {base_missing}, duplicates {base_dups}")

    print("\n2. Run with worker kills, a Redis restart and dropped PostgreSQL connections")
    reset_digests()
    fake.reset()
    redis.Redis.from_url(env["REDIS_URL"]).flushdb()
    events = plan_events(rng, args.kills, window=baseline["seconds"] * 0.8, gap=3.0)
    disturber = Disturber(events, workers, rng)
    disturber.started_at = time.monotonic()
    disturber.start()
    run = drive_digests(args.time_limit, args.redispatch_every)
    disturber.done.set()
    disturber.join(timeout=120)

    counts = fake.per_recipient()
    received = set(counts)
    missing = expected - received
    wrong = received - expected
    duplicates = duplicates_of(counts)
    kills = [e for e in events if e.kind == "kill" and e.at is not None]
    landed = [e for e in kills if e.open_rows]
    for event in events:
        if event.at is not None:
            event.in_flight = fake.in_flight(event.at)
    window_calls = {c.number: c for e in kills for c in e.in_flight}
    window_messages = sum(len(c.recipients) for c in window_calls.values())
    window_recipients = {r.lower() for c in window_calls.values() for r in c.recipients}
    doubled = {address for address, n in counts.items() if n > 1}
    statuses = delivery_counts()
    redis_event = next(e for e in events if e.kind == "redis")
    pg_event = next(e for e in events if e.kind == "postgres")
    answers = {}
    for call in fake.calls:
        answers[call.answer] = answers.get(call.answer, 0) + 1

    print(f"\nexpected recipients:                 {len(expected)}")
    print(f"received (distinct):                 {len(received)}")
    print(f"missing:                             {len(missing)}")
    print(f"sent to someone who must get none:   {len(wrong)}")
    print(f"duplicates:                          {duplicates} (to {len(doubled)} addresses)")
    print(f"messages in flight when kills landed: {window_messages} in {len(window_calls)} calls")
    print(f"duplicated addresses outside those calls: {len(doubled - window_recipients)}")
    for event in events:
        if event.at is not None and event.kind != "kill":
            print(f"  in flight at the {event.kind} disturbance: {sum(len(c.recipients) for c in event.in_flight)} messages")
    print(f"kills: {len(kills)}, landed while deliveries were open: {len(landed)}")
    print(f"provider calls: {len(fake.calls)} by answer {answers}")
    print(f"deliveries by status: {dict(statuses)}")
    print(f"dispatcher runs: {run['dispatcher_runs']} ({run['dispatch_errors']} failed during an outage)")
    ratio = run["seconds"] / baseline["seconds"] if baseline["seconds"] else float("inf")
    print(f"duration: undisturbed {baseline['seconds']:.1f} s, disturbed {run['seconds']:.1f} s ({ratio:.2f}x)")
    print(f"script total: {time.monotonic() - script_started:.0f} s")
    if doubled - window_recipients:
        explain_duplicates(fake, doubled - window_recipients, events, disturber.started_at)
    if missing:
        print(f"  e.g. missing: {sorted(missing)[:5]}")
    if disturber.error:
        print(f"  the disturber failed: {disturber.error!r}")

    return verdict({
        "undisturbed run: missing 0 and no duplicates": base_missing == 0 and base_dups == 0 and baseline["open"] == 0,
        f"at least 5 worker kills landed while deliveries were open ({len(landed)})": len(landed) >= 5,
        "Redis was restarted during the run": redis_event.at is not None and bool(redis_event.open_rows),
        "PostgreSQL connections were dropped during the run": pg_event.at is not None and bool(pg_event.open_rows)
        and "terminated 0 " not in pg_event.detail,
        f"missing 0 ({len(missing)})": not missing,
        f"nobody unsubscribed or paused got a digest ({len(wrong)})": not wrong,
        f"duplicates ({duplicates}) <= messages in flight when a kill landed ({window_messages})": duplicates <= window_messages,
        "every duplicate went to a recipient of a call in flight at a kill": doubled <= window_recipients,
        f"every delivery recorded as sent ({statuses.get('sent', 0)}/{len(expected)})":
            statuses.get("sent", 0) == len(expected) and sum(statuses.values()) == len(expected),
        "the disturbed run finished within the time limit": run["open"] == 0,
        "the disturber ran without error": disturber.error is None,
    })


if __name__ == "__main__":
    sys.exit(main())
