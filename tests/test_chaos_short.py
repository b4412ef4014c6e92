"""Short versions of the chaos scripts, in CI time and against the real services: Celery
worker processes on Redis and PostgreSQL that get SIGKILLed, Anymail's Mailgun backend
against a fake Mailgun that fails on purpose, the scraper against a misbehaving loopback
source, an SMTP sink. The long versions, with figures, are chaos/worker_crash.py,
chaos/failing_provider.py and chaos/bad_scrape.py. At the end: regression tests for what
those scripts found."""

import threading
import time
from datetime import timedelta

import psycopg
import pytest
from django.db import connection

from newsletter.celery import app as celery_app
from newsletter.digests import chunks, claims, dispatch
from newsletter.models import Delivery, PaperTopicScore, ScrapeRun
from newsletter.tasks.digests import dispatch_now

from .conftest import ARTIFACTS, DIGEST_WORKER_ENV, worker_env
from .helpers import make_subscriber
from .support import bad_scrape, failing_provider
from .support.digest_runs import delivery_counts, drive_digests, duplicates_of
from .support.fake_providers import ChaosMailgun
from .support.hf_server import SAMPLE_PAGE, Reply
from .support.processes import CeleryWorker
from .support.seeding import seed_scrape, seed_subscribers
from .support.smtp_sink import SmtpSink

pytestmark = pytest.mark.worker

MAILGUN = "anymail.backends.mailgun.EmailBackend"
REQUEUE_AFTER = 3  # DIGEST_REQUEUE_AFTER here and in the workers: lost chunks come back fast


@pytest.fixture
def chaos_workers(transactional_db, redis_clean, settings, topics):
    """Start killable workers (tests/support/processes.py) sharing this test's database and Redis:
    `chaos_workers(env, count=2)`. The dispatcher runs in the test process."""
    celery_app.conf.task_always_eager = False
    celery_app.conf.task_eager_propagates = False
    settings.DIGEST_REQUEUE_AFTER = REQUEUE_AFTER
    started = []

    def start(extra: dict, count: int = 2, concurrency: int = 1, name: str = "chaos") -> list[CeleryWorker]:
        if "DIGEST_CHUNK_SIZE" in extra:  # the dispatcher (here) cuts the chunks
            settings.DIGEST_CHUNK_SIZE = int(extra["DIGEST_CHUNK_SIZE"])
        env = worker_env({**DIGEST_WORKER_ENV, "DIGEST_REQUEUE_AFTER": str(REQUEUE_AFTER), **{k: str(v) for k, v in extra.items()}})
        workers = [CeleryWorker(env, f"{name}{i}", concurrency, log_dir=ARTIFACTS) for i in range(count)]
        started.extend(workers)
        return [w.start() for w in workers]

    yield start
    for worker in started:
        worker.stop()


def in_thread(function, **kwargs):
    """Run `function` in a thread of its own: close that thread's database connection after."""
    try:
        return function(**kwargs)
    finally:
        connection.close()


def wait_until(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_worker_kills_mid_send_lose_nothing_and_duplicate_only_calls_in_flight(chaos_workers):
    seed_scrape()
    expected, excluded = seed_subscribers(300, seed=5)
    with ChaosMailgun(latency=0.2, keep_messages=False) as fake:
        workers = chaos_workers({"TEST_EMAIL_BACKEND": MAILGUN, **fake.env(), "DIGEST_CHUNK_SIZE": 50,
                                 "DIGEST_BATCH_SIZE": 10, "DIGEST_SEND_TIMEOUT": 5})
        run = {}
        driver = threading.Thread(target=lambda: run.update(in_thread(drive_digests, time_limit=120, redispatch_every=2,
                                                                       progress_every=1000)), daemon=True)
        driver.start()  # the dispatcher, now and every 2 s while deliveries are open (beat's job)
        kills = []
        for worker, after in zip(workers, (40, 150)):
            wait_until(lambda: fake.accepted_count >= after, 90, f"{after} messages accepted")
            open_rows = Delivery.objects.filter(status__in=["pending", "sending"]).count()
            kills.append((time.monotonic(), open_rows))
            worker.kill()  # SIGKILL, main process and pool
            worker.start()
        driver.join()
        window = {c.number: c for at, _ in kills for c in fake.in_flight(at)}

    counts = fake.per_recipient()
    window_recipients = {r.lower() for c in window.values() for r in c.recipients}
    doubled = {address for address, n in counts.items() if n > 1}
    assert all(open_rows > 0 for _, open_rows in kills), kills  # the kills landed mid-send
    assert run["open"] == 0, delivery_counts()
    assert expected - set(counts) == set(), "missing"
    assert set(counts) - expected == set(), "sent to someone unsubscribed or paused"
    assert duplicates_of(counts) <= sum(len(c.recipients) for c in window.values())
    assert doubled <= window_recipients
    assert delivery_counts() == {"sent": len(expected)}


def test_failing_provider_every_digest_arrives_and_only_the_refused_fail(chaos_workers):
    seed_scrape()
    expected, _ = seed_subscribers(300, seed=7)
    refused = set(sorted(expected)[:3])
    with ChaosMailgun(latency=0.02, mix=failing_provider.FAILURE_MIX, seed=7, keep_messages=False) as fake:
        fake.hang_seconds = 2.5  # longer than DIGEST_SEND_TIMEOUT (1.5 s)
        fake.refuse = refused
        # At least one of each failure, whatever the random draws of this short run.
        fake.fail_next(("429", 1), ("500",), ("timeout",))
        chaos_workers({"TEST_EMAIL_BACKEND": MAILGUN, **failing_provider.provider_env(fake, 50, 10),
                       "DIGEST_REQUEUE_AFTER": REQUEUE_AFTER})
        run = drive_digests(time_limit=120, redispatch_every=2, progress_every=1000)
        figures, checks = failing_provider.check_outcome(fake, expected, refused)

    assert run["open"] == 0, figures
    assert [name for name, held in checks.items() if not held] == [], figures
    assert figures["delivered"] == len(expected) - 3 and figures["permanently failed"] == 3
    answers = figures["provider calls by answer"]
    assert answers.get(500) and answers.get(429) and answers.get("timeout") and answers.get(400), answers


@pytest.fixture
def counting_sink():
    with SmtpSink() as sink:
        yield sink


def test_bad_scrapes_send_nothing_lose_nothing_and_alert_then_a_good_one_sends(chaos_workers, hf_server, counting_sink):
    sink = counting_sink
    chaos_workers({"TEST_EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
                   **bad_scrape.scrape_env(hf_server, sink, total_timeout=1.5)}, count=1, concurrency=2)
    good = SAMPLE_PAGE.read_bytes()
    hf_server.route(bad_scrape.PATH, Reply.html(good))
    yesterday = bad_scrape.scrape_now(timeout=60)
    assert yesterday.status == ScrapeRun.Status.OK
    ScrapeRun.objects.filter(pk=yesterday.pk).update(started_at=yesterday.started_at - timedelta(days=1),
                                                     finished_at=yesterday.finished_at - timedelta(days=1))
    expected, excluded = seed_subscribers(60, prefix="scrape-reader")

    failed_checks = []
    for name, reply in bad_scrape.bad_replies(good, trickle=(64 * 1024, 0.1)):
        papers_before = bad_scrape.paper_snapshot()
        hf_server.route(bad_scrape.PATH, reply)
        started = time.monotonic()
        run = bad_scrape.scrape_now(timeout=60)
        report = dispatch_now(ignore_hour=True)
        checks = bad_scrape.check_bad_step(name, run, sink, papers_before, report, time.monotonic() - started, wait=1.0)
        failed_checks += [check for check, held in checks.items() if not held]
    assert failed_checks == []

    hf_server.route(bad_scrape.PATH, Reply.html(good))
    assert bad_scrape.scrape_now(timeout=60).status == ScrapeRun.Status.OK
    assert drive_digests(time_limit=60, redispatch_every=2, progress_every=1000)["open"] == 0
    sink.wait_for_total(len(expected) + 4, timeout=20)
    with sink.lock:
        per_recipient = dict(sink.per_recipient)
    assert per_recipient.pop(bad_scrape.ADMIN) == 4
    assert per_recipient == {address: 1 for address in expected}


# --- Regressions found by the chaos scripts -----------------------------------------------


class SessionDropper(ChaosMailgun):
    """During its first call, terminates the sender's database session (a PostgreSQL restart
    as the sender sees it) and lets the dispatcher run, as beat might right then."""

    def __init__(self, sender_pid: int, **kwargs):
        super().__init__(**kwargs)
        self.sender_pid = sender_pid
        self.taken_over = None

    def _handle(self, path, headers, body):
        answer = super()._handle(path, headers, body)
        if self.taken_over is None:
            settings_dict = connection.settings_dict
            with psycopg.connect(host=settings_dict["HOST"] or "127.0.0.1", port=settings_dict["PORT"] or 5432,
                                 user=settings_dict["USER"], dbname=settings_dict["NAME"], autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", [self.sender_pid])
                # The backend exits (and lets its locks go) a moment after it is signalled.
                deadline = time.monotonic() + 10
                while admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [self.sender_pid]).fetchone():
                    if time.monotonic() > deadline:
                        break
                    time.sleep(0.01)
            try:
                self.taken_over = claims.requeue_abandoned()  # this handler thread's own connection
            finally:
                connection.close()
        return answer


@pytest.mark.django_db(transaction=True)
def test_a_chunk_that_lost_its_database_session_leaves_taken_over_rows_alone(topics, settings):
    """worker_crash.py found ~400 duplicates per run after dropping PostgreSQL connections: a
    worker whose session was terminated reconnected and went on sending its chunk without its
    liveness lock, while the dispatcher handed the same rows to another worker."""
    seed_scrape()
    topic_id = PaperTopicScore.objects.values_list("topic_id", flat=True).first()
    readers = [make_subscriber(f"dropped{i}@example.org", topics=[topic_id], papers_per_email=3) for i in range(6)]
    settings.DIGEST_BATCH_SIZE = 2  # three calls of two
    dispatch.create_deliveries(ignore_hour=True)
    ids = list(Delivery.objects.values_list("pk", flat=True))
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        [pid] = cursor.fetchone()

    with SessionDropper(pid, keep_messages=False) as fake:
        settings.EMAIL_BACKEND = MAILGUN
        settings.ANYMAIL = {**settings.ANYMAIL, **{k: v for k, v in fake.env().items() if k.startswith("MAILGUN_")}}
        report = chunks.send_chunk(ids, claimer="task-that-lost-its-session")
        assert fake.taken_over == 6  # the dispatcher took every row back during the first call
        # The first call was in flight; after it the chunk saw the rows were no longer its own.
        assert len(fake.calls) == 1 and report.sent == 0
        first_call = {r.lower() for r in fake.calls[0].recipients}

        dispatch_now(ignore_hour=True)  # sends the taken-over rows (tasks run eagerly here)
        counts = fake.per_recipient()

    assert set(counts) == {r.email for r in readers}
    # Only the call in flight when the session was lost went out twice.
    assert {address for address, n in counts.items() if n > 1} == first_call and max(counts.values()) == 2
    assert delivery_counts() == {"sent": 6}


def alive_seen_from_another_session(claimer: str) -> bool:
    seen = []

    def look():
        try:
            seen.append(claims.claimer_alive(claimer))
        finally:
            connection.close()

    thread = threading.Thread(target=look)
    thread.start()
    thread.join()
    return seen[0]


@pytest.mark.django_db(transaction=True)
def test_a_claimer_takes_its_lock_again_after_a_reconnection(topics):
    reader = make_subscriber("relock@example.org")
    delivery = Delivery.objects.create(subscriber=reader, digest_date="2026-11-24")
    claimer = "task-relock"
    with claims.liveness_lock(claimer) as ours:
        assert ours and claims.claim([delivery.pk], claimer) == [delivery.pk]
        assert alive_seen_from_another_session(claimer)
        connection.close()  # the session and its lock are gone: the claimer looks dead
        assert not alive_seen_from_another_session(claimer)
        # Before its next provider call it takes the lock again; nobody took the row over.
        assert claims.still_mine([delivery.pk], claimer) == {delivery.pk}
        assert alive_seen_from_another_session(claimer)
    assert not alive_seen_from_another_session(claimer)


@pytest.mark.django_db(transaction=True)
def test_a_session_terminated_under_a_claimer_stops_its_next_call(topics):
    """Regression (worker_crash.py): with the lock's session terminated but not yet noticed,
    the claimer sent one more call whose rows the dispatcher had already handed on. The
    check before each call must touch the database and fail, so nothing is sent."""
    from newsletter.digests.providers import DATABASE_ERRORS

    reader = make_subscriber("terminated@example.org")
    delivery = Delivery.objects.create(subscriber=reader, digest_date="2026-11-24")
    claimer = "task-terminated"
    with claims.liveness_lock(claimer) as ours:
        assert ours and claims.claim([delivery.pk], claimer) == [delivery.pk]
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            pid = cursor.fetchone()[0]
        db = connection.settings_dict
        with psycopg.connect(host=db["HOST"] or "127.0.0.1", port=db["PORT"] or 5432, user=db["USER"], dbname=db["NAME"], autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", [pid])
        assert not alive_seen_from_another_session(claimer)
        with pytest.raises(DATABASE_ERRORS):
            claims.still_mine([delivery.pk], claimer)
    connection.close()


def test_merge_syntax_in_a_topic_name_stays_literal_in_the_subject():
    """The hostile battery (case_scraped_xss_everywhere) once found a paper titled
    "%recipient.unsubscribe_url% ..." got each recipient's unsubscribe link put into the
    subject by the provider: the subject's one-line cleaning dropped the zero-width space that
    keeps merge syntax literal in the bodies. Subjects now name topics, not titles; a topic
    name comes from the admin, and gets the same cleaning."""
    from newsletter.digests.rendering import subject_for

    subject = subject_for("daily", ("%recipient.unsubscribe_url%\r\nBcc: x@example.net",), 1)
    assert "%recipient." not in subject and "%\u200brecipient.unsubscribe_url%" in subject
    assert "\r" not in subject and "\n" not in subject
