"""The failing-provider scenario (chaos/failing_provider.py, and its short version in
tests/test_chaos_short.py): a fake Mailgun that answers a random mix of failures and refuses
some recipients for good, the worker settings that face it, and what must hold after.
(Django must be set up for `check_outcome`.)"""

from .digest_runs import delivery_counts, duplicates_of

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
    """What a run through a failing provider must show: (figures to print, checks that must hold)."""
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
