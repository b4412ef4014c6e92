"""Does the sign-up answer's timing tell a new address from a known one?

    .venv/bin/python bench/signup_timing.py [--probes 300] [--database nl_signup_timing --redis-db 14]

Runs the site as in production: gunicorn (one sync worker) with production settings on
PostgreSQL and Redis, a real Celery worker sending to an SMTP sink, all on loopback. The
database (--database, dropped and re-created here) holds --probes active subscribers. One
HTTP session then posts --probes sign-ups of new addresses and --probes of active ones,
interleaved in random order with a pause between them, and times each answer on the client.

Prints the median (and p10/p90) answer time for each kind, and how often a one-probe
classifier tells them apart: the best threshold (and side) fitted on half of the probes,
scored on the other half. 50 % is a coin toss.
"""

import argparse
import os
import random
import re
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import requests  # noqa: E402

from tests.support.databases import base_env, fresh_database, setup_django  # noqa: E402
from tests.support.net import free_port  # noqa: E402
from tests.support.processes import start_gunicorn, start_worker  # noqa: E402
from tests.support.smtp_sink import SmtpSink  # noqa: E402

TOPICS = ["agents", "code"]


def seed_active(count: int) -> list[str]:
    from django.utils import timezone

    from subscriptions.models import Subscriber, Topic

    topics = list(Topic.objects.filter(slug__in=TOPICS))
    addresses = [f"known-{i}@example.org" for i in range(count)]
    for subscriber in Subscriber.objects.bulk_create(
        [Subscriber(email=a, status=Subscriber.Status.ACTIVE, confirmed_at=timezone.now()) for a in addresses]
    ):
        subscriber.topics.set(topics)
    return addresses


def one_probe_accuracy(train: list[tuple[float, bool]], test: list[tuple[float, bool]]) -> float:
    """Fit "slower than t means new" (or faster) on `train`; the share of `test` it gets right."""
    best = (0.0, 0.0, True)
    for t, _ in train:
        for slower_is_new in (True, False):
            right = sum((ms > t) == (is_new if slower_is_new else not is_new) for ms, is_new in train)
            if right > best[0]:
                best = (right, t, slower_is_new)
    _, t, slower_is_new = best
    right = sum((ms > t) == (is_new if slower_is_new else not is_new) for ms, is_new in test)
    return right / len(test)


def describe(name: str, samples: list[float]) -> str:
    deciles = statistics.quantiles(samples, n=10)
    return f"{name:>7}: median {statistics.median(samples):6.2f} ms  (p10 {deciles[0]:.2f}, p90 {deciles[-1]:.2f}, n={len(samples)})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--probes", type=int, default=300, help="sign-ups of each kind")
    parser.add_argument("--gap", type=float, default=0.05, help="seconds between probes (the worker runs then)")
    parser.add_argument("--database", default="nl_signup_timing")
    parser.add_argument("--redis-db", type=int, default=14)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    sink = SmtpSink(keep_messages=False).start()
    port = free_port()
    env = base_env(args.database, args.redis_db, SITE_URL=f"http://127.0.0.1:{port}",
                   EMAIL_PROVIDER="smtp", EMAIL_HOST="127.0.0.1", EMAIL_PORT=sink.port, SIGNUP_RATE_LIMIT="100000000/m")
    print("Preparing database ...", flush=True)
    fresh_database(env)
    setup_django(env)
    known = seed_active(args.probes + 20)
    start_gunicorn(env, port, workers=1, threads=1)
    start_worker(env, "timing", concurrency=1)
    origin = f"http://127.0.0.1:{port}"

    session = requests.Session()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', session.get(f"{origin}/", timeout=10).text).group(1)
    bodies = set()

    def probe(email: str) -> float:
        data = {"csrfmiddlewaretoken": token, "email": email, "topics": TOPICS, "frequency": "daily"}
        started = time.perf_counter()
        response = session.post(f"{origin}/", data=data, timeout=30, allow_redirects=False)
        elapsed = (time.perf_counter() - started) * 1000
        if response.status_code != 303:  # redirect-after-POST to /check-inbox/
            raise SystemExit(f"sign-up of {email} answered {response.status_code}:\n{response.text[:2000]}")
        bodies.add(response.text.replace(email, "EMAIL"))
        return elapsed

    rng = random.Random(args.seed)
    for i in range(20):  # warm-up: connections, caches, the worker's first tasks
        probe(f"warmup-{i}@example.org")
        probe(known.pop())
        time.sleep(args.gap)
    kinds = [True] * args.probes + [False] * args.probes
    rng.shuffle(kinds)
    samples: list[tuple[float, bool]] = []
    print(f"Probing: {args.probes} new and {args.probes} active addresses, interleaved ...", flush=True)
    for n, is_new in enumerate(kinds):
        samples.append((probe(f"new-{n}@example.org" if is_new else known.pop()), is_new))
        time.sleep(args.gap)

    new = [ms for ms, is_new in samples if is_new]
    active = [ms for ms, is_new in samples if not is_new]
    accuracy = one_probe_accuracy(samples[0::2], samples[1::2])
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f} (2 cores shared with other processes)")
    print(describe("new", new))
    print(describe("active", active))
    print(f"difference of medians: {statistics.median(new) - statistics.median(active):+.2f} ms")
    print(f"one-probe classifier (threshold fitted on half the probes, scored on the other half): {accuracy:.1%} right")
    print(f"distinct answer bodies (address blanked): {len(bodies)}")
    sink.wait_for_total(len(samples) + 40, timeout=60)
    print(f"emails at the sink: {sink.total} for {len(samples) + 40} sign-ups")
    return 0


if __name__ == "__main__":
    sys.exit(main())
