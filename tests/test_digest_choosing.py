"""Who is due, what their digest holds, and the bookkeeping around it (in-process: tasks run
eagerly, email goes to Django's locmem outbox)."""

from datetime import datetime, timedelta, timezone as dt_timezone
from email import message_from_bytes, policy

import psycopg
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from newsletter.digests import chunks, claims, dispatch
from newsletter.digests.ratelimit import TokenBucket
from newsletter.models import Delivery, DigestContent
from newsletter.tasks.digests import dispatch_now
from subscriptions.models import Subscriber

from .helpers import make_subscriber

S = Delivery.Status


def paper(n, topics, upvotes=10, **fields):
    return dict(arxiv_id=f"2611.2{n:04d}", title=f"Paper number {n}", abstract=f"Abstract {n}.", authors=["X"],
                upvotes=upvotes, topics=topics, **fields)


def received(message):
    """A locmem outbox entry as the parsed email a mailbox would get."""
    return message_from_bytes(message.message().as_bytes(), policy=policy.default)


def text_of(message) -> str:
    return received(message).get_body(preferencelist=("plain",)).get_content()


def arxiv_ids_in(text: str) -> list[str]:
    """The papers of a digest's text part, in order."""
    import re

    return re.findall(r"arXiv: https://arxiv.org/abs/([0-9.]+)", text)


def sent_arxiv_ids(message) -> list[str]:
    return arxiv_ids_in(text_of(message))


def test_due_follows_each_local_hour_date_and_weekday(topics, make_scrape):
    now = datetime(2026, 11, 24, 6, 30, tzinfo=dt_timezone.utc)  # a Tuesday
    make_scrape([paper(1, {"agents": 5})], started_at=now - timedelta(hours=1))
    agents = [topics["agents"]]
    cases = {
        "utc-too-early@example.org": dict(timezone="UTC", send_hour=7),  # 06:30
        "paris@example.org": dict(timezone="Europe/Paris", send_hour=7),  # 07:30
        "tokyo-too-early@example.org": dict(timezone="Asia/Tokyo", send_hour=20),  # 15:30
        "kolkata@example.org": dict(timezone="Asia/Kolkata", send_hour=12),  # 12:00
        "la@example.org": dict(timezone="America/Los_Angeles", send_hour=22),  # 22:30 on the 23rd
        "weekly-today@example.org": dict(frequency="weekly", weekday=1, send_hour=6),
        "weekly-monday@example.org": dict(frequency="weekly", weekday=0, send_hour=6),
        "paused@example.org": dict(paused=True, send_hour=0),
    }
    for email, fields in cases.items():
        make_subscriber(email, topics=agents, **fields)
    make_subscriber("gone@example.org", status=Subscriber.Status.UNSUBSCRIBED, topics=agents, send_hour=0)

    assert dispatch.create_deliveries(now) == 4
    due = {d.subscriber.email: (d.digest_date.isoformat(), d.kind) for d in Delivery.objects.select_related("subscriber")}
    assert due == {
        "paris@example.org": ("2026-11-24", "daily"),
        "kolkata@example.org": ("2026-11-24", "daily"),
        "la@example.org": ("2026-11-23", "daily"),
        "weekly-today@example.org": ("2026-11-24", "weekly"),
    }
    # Again in the same hour: nothing new. --all ignores the hour but not the weekday.
    assert dispatch.create_deliveries(now) == 0
    assert dispatch.create_deliveries(now, ignore_hour=True) == 2
    assert set(Delivery.objects.values_list("subscriber__email", flat=True)) >= {"utc-too-early@example.org", "tokyo-too-early@example.org"}
    assert not Delivery.objects.filter(subscriber__email__in=["weekly-monday@example.org", "paused@example.org", "gone@example.org"]).exists()


def test_no_digest_from_a_failed_or_stale_scrape(topics, make_scrape):
    make_subscriber("r@example.org", topics=[topics["agents"]], send_hour=0)
    make_scrape([paper(1, {"agents": 5})], started_at=timezone.now() - timedelta(hours=2))
    make_scrape([], status="failed", started_at=timezone.now() - timedelta(hours=1))
    report = dispatch_now(ignore_hour=True)
    assert "failed" in report.waiting and report.due == 0
    assert not Delivery.objects.exists() and not mail.outbox

    # A good but old scrape is not used either.
    make_scrape([paper(1, {"agents": 5})], started_at=timezone.now() - timedelta(hours=40))
    Delivery.objects.all().delete()
    from newsletter.models import ScrapeRun

    ScrapeRun.objects.filter(started_at__gte=timezone.now() - timedelta(hours=3)).delete()
    report = dispatch_now(ignore_hour=True)
    assert "older than" in report.waiting and not Delivery.objects.exists()

    # A fresh 304 stands for the data of the good run before it.
    make_scrape([], status="not_modified", started_at=timezone.now() - timedelta(minutes=5))
    report = dispatch_now(ignore_hour=True)
    assert report.waiting == "" and report.due == 1
    assert [sent_arxiv_ids(m) for m in mail.outbox] == [["2611.20001"]]


def test_papers_match_topics_rank_by_score_and_upvotes_and_never_repeat(topics, make_scrape):
    today = timezone.now()
    make_scrape([
        paper(1, {"agents": 9.0}, upvotes=5),
        paper(2, {"agents": 4.0}, upvotes=500),
        paper(3, {"agents": 4.0, "code": 9.0}, upvotes=50),
        paper(4, {"code": 6.0}, upvotes=10),
        paper(5, {"multimodal": 9.0}, upvotes=900),
    ], started_at=today - timedelta(hours=1))
    agents = make_subscriber("agents@example.org", topics=[topics["agents"]], papers_per_email=2)
    both = make_subscriber("both@example.org", topics=[topics["agents"], topics["code"]])
    nothing = make_subscriber("nothing@example.org", topics=[topics["robotics"]])

    dispatch_now(ignore_hour=True)
    by_to = {m.to[0]: m for m in mail.outbox}
    assert set(by_to) == {agents.email, both.email}
    # score x log2(2 + upvotes): 4.0 x log2(502) = 35.9 > 9.0 x log2(7) = 25.3 > 4.0 x log2(52) = 22.8
    assert sent_arxiv_ids(by_to[agents.email]) == ["2611.20002", "2611.20001"]
    # The best score over the reader's topics counts: paper 3 is a 9.0 for "code".
    assert sent_arxiv_ids(by_to[both.email]) == ["2611.20003", "2611.20002", "2611.20001", "2611.20004"]
    assert Delivery.objects.get(subscriber=nothing).status == S.SKIPPED

    # The next day a new scrape adds paper 6: only what was never sent goes out.
    mail.outbox.clear()
    day_two = [paper(1, {"agents": 9.0}, upvotes=6), paper(2, {"agents": 4.0}, upvotes=501),
               paper(3, {"agents": 4.0, "code": 9.0}, upvotes=51), paper(6, {"agents": 2.0}, upvotes=1)]
    make_scrape(day_two, started_at=today + timedelta(days=1, hours=-1))
    dispatch_now(now=today + timedelta(days=1), ignore_hour=True)
    by_to = {m.to[0]: m for m in mail.outbox}
    assert sent_arxiv_ids(by_to[agents.email]) == ["2611.20003", "2611.20006"]
    assert sent_arxiv_ids(by_to[both.email]) == ["2611.20006"]

    # A third day with nothing new: skipped, no email.
    mail.outbox.clear()
    make_scrape(day_two, started_at=today + timedelta(days=2, hours=-1))
    dispatch_now(now=today + timedelta(days=2), ignore_hour=True)
    assert [m.to[0] for m in mail.outbox] == []
    third = Delivery.objects.filter(digest_date=(today + timedelta(days=2)).date())
    assert {d.subscriber.email: d.status for d in third} == {
        agents.email: S.SKIPPED, both.email: S.SKIPPED, nothing.email: S.SKIPPED
    }


def test_weekly_digests_take_the_best_of_the_last_seven_days(topics, make_scrape):
    now = timezone.now()
    make_scrape([paper(1, {"agents": 5}, upvotes=1000)], started_at=now - timedelta(days=8))
    make_scrape([paper(2, {"agents": 5}, upvotes=10)], started_at=now - timedelta(days=5))
    make_scrape([paper(3, {"agents": 5}, upvotes=300)], started_at=now - timedelta(days=2))
    make_scrape([paper(4, {"agents": 5}, upvotes=20)], started_at=now - timedelta(hours=1))
    local_weekday = now.weekday()
    make_subscriber("weekly@example.org", topics=[topics["agents"]], frequency="weekly", weekday=local_weekday)
    make_subscriber("daily@example.org", topics=[topics["agents"]])
    dispatch_now(ignore_hour=True)
    by_to = {m.to[0]: m for m in mail.outbox}
    assert sent_arxiv_ids(by_to["weekly@example.org"]) == ["2611.20003", "2611.20004", "2611.20002"]
    day = Delivery.objects.get(subscriber__email="weekly@example.org").digest_date
    assert received(by_to["weekly@example.org"])["Subject"] == f"3 this week in Agents and tool use · {day:%-d %b}"
    assert sent_arxiv_ids(by_to["daily@example.org"]) == ["2611.20004"]


def test_queries_per_chunk_do_not_grow_with_its_size(topics, make_scrape):
    make_scrape([paper(n, {"agents": 5, "code": n}) for n in range(1, 9)])

    def queries_for(count, prefix):
        readers = [make_subscriber(f"{prefix}{i}@example.org", topics=[topics["agents"], topics["code"]][: 1 + i % 2])
                   for i in range(count)]
        dispatch.create_deliveries(ignore_hour=True)
        ids = list(Delivery.objects.filter(subscriber__in=readers).values_list("pk", flat=True))
        with CaptureQueriesContext(connection) as queries:
            report = chunks.send_chunk(ids, claimer=f"test-{prefix}")
        assert report.sent == count and report.digests == 2
        return len(queries), report.calls

    queries_for(4, "warm")  # the first chunk of a process also loads the paper pool and blocks
    (small, small_calls), (large, large_calls) = queries_for(10, "small"), queries_for(300, "large")
    # Two digests in both; 30 times the recipients only add, per extra call, one record query
    # and one liveness probe (one-by-one backends record every 100 messages: 2 calls for 10,
    # 4 for 300).
    assert (small_calls, large_calls) == (2, 4)
    assert large - small == 2 * (large_calls - small_calls)
    assert small <= 20


def test_unsubscribed_after_dispatch_is_skipped_and_a_dead_claim_is_taken_over(topics, make_scrape, db):
    make_scrape([paper(1, {"agents": 5})])
    keep = make_subscriber("keep@example.org", topics=[topics["agents"]])
    leave = make_subscriber("leave@example.org", topics=[topics["agents"]])
    alive = make_subscriber("alive@example.org", topics=[topics["agents"]])
    dispatch.create_deliveries(ignore_hour=True)
    Delivery.objects.update(queued_at=None)  # as if their queue message was lost
    Subscriber.objects.filter(pk=leave.pk).update(status=Subscriber.Status.UNSUBSCRIBED)
    # keep's row was claimed by a worker that died (no session holds its lock); alive's by a
    # worker that still runs (another session holds its lock).
    Delivery.objects.filter(subscriber=keep).update(status=S.SENDING, claimed_by="dead-task", claimed_at=timezone.now())
    Delivery.objects.filter(subscriber=alive).update(status=S.SENDING, claimed_by="live-task", claimed_at=timezone.now())
    settings_dict = connection.settings_dict
    other = psycopg.connect(host=settings_dict["HOST"] or "127.0.0.1", port=settings_dict["PORT"] or 5432,
                            user=settings_dict["USER"], dbname=settings_dict["NAME"], autocommit=True)
    try:
        other.execute("SELECT pg_advisory_lock(%s, %s)", [claims._LOCK_CLASS, claims._lock_key("live-task")])
        report = dispatch_now(ignore_hour=True)
        assert report.abandoned == 1
        assert [m.to[0] for m in mail.outbox] == [keep.email]
        statuses = {d.subscriber.email: d.status for d in Delivery.objects.select_related("subscriber")}
        assert statuses == {keep.email: S.SENT, leave.email: S.SKIPPED, alive.email: S.SENDING}
        # The same task redelivered while the live one runs does nothing.
        ids = list(Delivery.objects.values_list("pk", flat=True))
        assert chunks.send_chunk(ids, claimer="live-task").busy
    finally:
        other.close()
    # Its worker gone, the row is taken over and sent.
    report = dispatch_now(ignore_hour=True)
    assert report.abandoned == 1
    assert sorted(m.to[0] for m in mail.outbox) == [alive.email, keep.email]


def test_digest_contents_are_shared_by_identical_digests(topics, make_scrape):
    make_scrape([paper(1, {"agents": 5}), paper(2, {"code": 5})])
    for i in range(6):
        make_subscriber(f"s{i}@example.org", topics=[topics["agents"] if i % 2 else topics["code"]])
    dispatch_now(ignore_hour=True)
    assert len(mail.outbox) == 6
    assert DigestContent.objects.count() == 2
    assert Delivery.objects.values("content").distinct().count() == 2


def test_token_bucket_is_shared_between_workers(redis_clean):
    first = TokenBucket(rate=100, capacity=100, key="test:bucket")
    second = TokenBucket(rate=100, capacity=100, key="test:bucket")
    assert first.reserve(100) == 0  # the full bucket
    wait = second.reserve(50)  # another worker, same bucket: in debt by 50 -> half a second
    assert 0.4 < wait <= 0.5
    assert 0.9 < first.reserve(50) <= 1.0  # queued behind it


def test_after_a_reconnection_a_worker_sends_only_what_it_still_holds(transactional_db, topics, make_scrape):
    import threading

    make_scrape([paper(1, {"agents": 5})])
    for i in range(3):
        make_subscriber(f"r{i}@example.org", topics=[topics["agents"]])
    dispatch.create_deliveries(ignore_hour=True)
    ids = list(Delivery.objects.values_list("pk", flat=True))
    with claims.liveness_lock("worker-1") as held:
        assert held
        claimed = claims.claim(ids, "worker-1")
        assert claims.still_mine(claimed, "worker-1") == set(claimed)
        connection.close()  # PostgreSQL restarted: the session and its lock are gone
        # Meanwhile a dispatcher finds the claimer dead and takes the rows back.
        other = threading.Thread(target=lambda: (claims.requeue_abandoned(), connection.close()))
        other.start()
        other.join()
        assert set(Delivery.objects.values_list("status", flat=True)) == {S.PENDING}
        # Before its next provider call the worker notices: nothing is its to send any more.
        assert claims.still_mine(claimed, "worker-1") == set()
    assert not mail.outbox


def test_a_chunk_retries_on_celerys_backoff_but_never_before_retry_after(settings):
    settings.DIGEST_RETRY_BACKOFF, settings.DIGEST_RETRY_BACKOFF_MAX = 2.0, 10.0
    # Full jitter under the exponential ceiling: 2 s x 2**1 = 4 s on the second attempt...
    second = [chunks.retry_countdown(1) for _ in range(300)]
    assert 0 <= min(second) < 1 and 3 < max(second) <= 4 and len(set(second)) > 100
    # ...capped from the fourth on (2 x 2**3 = 16 > 10).
    assert max(chunks.retry_countdown(3) for _ in range(300)) <= 10
    # A provider's Retry-After wins over a shorter backoff, within the cap.
    assert all(chunks.retry_countdown(0, retry_after=7) >= 7 for _ in range(50))
    assert chunks.retry_countdown(0, retry_after=3600) == 10
