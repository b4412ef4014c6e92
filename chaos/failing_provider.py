"""A failing provider: every digest still arrives, the refused ones fail alone, retries wait.

Real Celery workers on Redis and PostgreSQL send the day's digests through Anymail's Mailgun
backend to a fake Mailgun on loopback that answers, at random, 10% of calls with 500, 5% with
429 and a Retry-After of 1-3 s, 3% with a time-out after accepting the call (the answer comes
after DIGEST_SEND_TIMEOUT), and refuses a few recipients for good (400 naming them, as
Mailgun does for an address it considers invalid). The dispatcher runs beat-less, as in
chaos/worker_crash.py.

Verdict: delivered = everyone but the refused ones, missing 0; permanently failed = exactly
the refused addresses, each delivery marked failed and each subscriber suppressed (bounced,
with the reason in the consent log); retries waited at least the Retry-After asked for;
duplicates only to recipients of calls that timed out after the provider accepted them (the
one window no client can close) and at most their messages.

    .venv/bin/python chaos/failing_provider.py [--subscribers 5000] [--refused 5]
"""

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from chaos.support import verdict  # noqa: E402
from tests.support.databases import base_env, fresh_database, setup_django  # noqa: E402
from tests.support.digest_runs import drive_digests  # noqa: E402
from tests.support.failing_provider import FAILURE_MIX, check_outcome, provider_env  # noqa: E402
from tests.support.fake_providers import ChaosMailgun  # noqa: E402
from tests.support.processes import CeleryWorker  # noqa: E402
from tests.support.seeding import seed_scrape, seed_subscribers  # noqa: E402

DB_NAME = "nl_chaos_provider"
REDIS_DB = 6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=5000)
    parser.add_argument("--refused", type=int, default=5, help="recipients the provider refuses for good")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--chunk-size", type=int, default=250)
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds the fake provider takes per call")
    parser.add_argument("--time-limit", type=float, default=600)
    parser.add_argument("--seed", type=int, default=20261124)
    args = parser.parse_args()
    started = time.monotonic()

    fake = ChaosMailgun(latency=args.latency, mix=FAILURE_MIX, seed=args.seed, keep_messages=False).start()
    fake.hang_seconds = 3.0  # the "time-out after accepting": longer than DIGEST_SEND_TIMEOUT
    env = base_env(DB_NAME, REDIS_DB, **provider_env(fake, args.chunk_size, args.batch_size))
    fresh_database(env)
    setup_django(env)
    seed_scrape()
    expected, excluded = seed_subscribers(args.subscribers, seed=args.seed)
    refused = set(random.Random(args.seed).sample(sorted(expected), args.refused))
    fake.refuse = refused
    print(f"{len(expected)} subscribers due a digest ({len(excluded)} unsubscribed or paused); the provider refuses {len(refused)} of them")
    print("failure mix per call: " + ", ".join(f"{share:.0%} {answer}" for answer, share in FAILURE_MIX))
    workers = [CeleryWorker(env, f"provider{i}", args.concurrency).start() for i in range(args.workers)]

    run = drive_digests(args.time_limit, redispatch_every=5)
    figures, checks = check_outcome(fake, expected, refused)
    for name, value in figures.items():
        print(f"{name + ':':50} {value}")
    print(f"{'refused addresses:':50} {', '.join(sorted(refused))}")
    logs = "".join(w.output() for w in workers)
    print(f"{'task retries (Celery):':50} {logs.count('Retry in')}")
    print(f"{'chunks that used up DIGEST_MAX_RETRIES':50} {logs.count('event=digest.chunk_gave_up')} (their rows went back to the dispatcher)")
    print(f"{'run:':50} {run['seconds']:.1f} s, {run['dispatcher_runs']} dispatcher runs; script total {time.monotonic() - started:.0f} s")
    checks["the run finished within the time limit"] = run["open"] == 0
    return verdict(checks)


if __name__ == "__main__":
    sys.exit(main())
