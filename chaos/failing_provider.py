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

from chaos.support import (  # noqa: E402
    ChaosMailgun, Worker, base_env, delivery_counts, drive_digests, duplicates_of, fresh_database, seed_scrape,
    seed_subscribers, setup_django, verdict,
)

DB_NAME = "nl_chaos_provider"
REDIS_DB = 6
FAILURE_MIX = [("500", 0.10), ("429", 0.05), ("timeout", 0.03)]


def provider_env(fake, chunk_size: int, batch_size: int) -> dict:
    """Settings for workers facing a failing provider: short time-outs and backoffs."""
    return {
        **fake.env(),
        "DIGEST_CHUNK_SIZE": chunk_size, "DIGEST_BATCH_SIZE": batch_size,
        "DIGEST_SEND_TIMEOUT": 1.5, "DIGEST_RETRY_BACKOFF": 0.5, "DIGEST_RETRY_BACKOFF_MAX": 5,
        "DIGEST_MAX_RETRIES": 10, "DIGEST_REQUEUE_AFTER": 20,
    }


def check_outcome(fake, expected: set[str], refused: set[str]) -> tuple[dict, dict]:
    """Figures and checks shared with tests/test_chaos_short.py."""
    from newsletter.models import Delivery
    from subscriptions.models import ConsentEvent, Subscriber

    counts = fake.per_recipient()
    received = set(counts)
    should_arrive = expected - refused
    timed_out = [c for c in fake.calls if c.accepted and getattr(c, "planned", "") == "timeout"]
    window_messages = sum(len(c.recipients) for c in timed_out)
    window_recipients = {r.lower() for c in timed_out for r in c.recipients}
    doubled = {address for address, n in counts.items() if n > 1}
    failed_rows = Delivery.objects.filter(status=Delivery.Status.FAILED).select_related("subscriber")
    failed = {d.subscriber.email: d for d in failed_rows}
    suppressed = {
        s.email for s in Subscriber.objects.filter(email__in=refused, status=Subscriber.Status.BOUNCED)
        if s.consent_events.filter(kind=ConsentEvent.Kind.BOUNCE, details__reason="refused by provider").exists()
    }
    wrongly_suppressed = Subscriber.objects.filter(email__in=should_arrive).exclude(status=Subscriber.Status.ACTIVE).count()
    answers: dict = {}
    for call in fake.calls:
        key = "timeout" if getattr(call, "planned", "") == "timeout" and call.accepted else call.answer
        answers[key] = answers.get(key, 0) + 1
    # Retry-After honoured: nobody of a 429 call appears in a call sooner than it asked.
    too_soon = 0
    calls = sorted(fake.calls, key=lambda c: c.started)
    for i, call in enumerate(calls):
        if call.answer == 429 and call.retry_after:
            people = {r.lower() for r in call.recipients}
            again = next((c for c in calls[i + 1:] if people & {r.lower() for r in c.recipients}), None)
            if again is not None and again.started - call.started < call.retry_after - 0.05:
                too_soon += 1
    attempts = list(Delivery.objects.values_list("attempts", flat=True))
    figures = {
        "delivered": len(received & should_arrive),
        "retried (deliveries that took more than one attempt)": sum(1 for a in attempts if a > 1),
        "permanently failed": len(failed),
        "missing": len(should_arrive - received),
        "duplicates": duplicates_of(counts),
        "messages of calls that timed out after accepting": window_messages,
        "provider calls by answer": answers,
        "429 answers": sum(1 for c in fake.calls if c.answer == 429),
        "retries sooner than Retry-After": too_soon,
        "deliveries by status": dict(delivery_counts()),
    }
    checks = {
        f"missing 0 ({figures['missing']})": not should_arrive - received,
        "nobody refused, unsubscribed or paused got a digest": not received - should_arrive,
        f"permanently failed are exactly the {len(refused)} refused addresses": set(failed) == refused,
        "each refused delivery says why": all(d.error and "not a valid address" in d.error for d in failed.values()),
        "each refused subscriber is suppressed (bounced, reason in the consent log)": suppressed == refused,
        "nobody else was suppressed": wrongly_suppressed == 0,
        f"duplicates ({figures['duplicates']}) <= messages of timed-out calls ({window_messages})": figures["duplicates"] <= window_messages,
        "every duplicate went to a recipient of a timed-out call": doubled <= window_recipients,
        "every 429 was waited out for its Retry-After": too_soon == 0 and figures["429 answers"] > 0,
        "every delivery settled as sent or failed": set(figures["deliveries by status"]) <= {"sent", "failed"},
    }
    return figures, checks


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
    workers = [Worker(env, f"provider{i}", args.concurrency).start() for i in range(args.workers)]

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
