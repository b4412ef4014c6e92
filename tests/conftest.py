"""Shared fixtures. The suite runs against the real services on loopback: PostgreSQL (the
test database pytest-django creates), Redis (a database of its own, flushed per test) and,
where the point is the queueing, a real Celery worker process consuming from Redis."""

import os
import socket
import subprocess
import sys
import time
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from django.conf import settings
from django.core.cache import cache

from newsletter.celery import app as celery_app

from .hf_server import hf_server, scrape_settings  # noqa: F401  (the scraper tests' fake huggingface.co)

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "tests" / "artifacts"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(autouse=True)
def _clean_cache_and_eager_tasks(request):
    """Each test starts with an empty cache (rate limits, locks). Tasks run eagerly in-process
    unless the test asked for a real worker."""
    cache.clear()
    eager = "celery_worker" not in request.fixturenames
    celery_app.conf.task_always_eager = eager
    celery_app.conf.task_eager_propagates = eager
    yield
    celery_app.conf.task_always_eager = False


class SinkHandler:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        msg = message_from_bytes(envelope.content, policy=policy.default)
        self.messages.append({"envelope_to": list(envelope.rcpt_tos), "from": envelope.mail_from, "message": msg})
        return "250 Message accepted for delivery"


class SmtpSink:
    """A real SMTP server (aiosmtpd) on loopback that keeps every message it receives."""

    def __init__(self):
        self.handler = SinkHandler()
        self.port = free_port()
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)

    @property
    def messages(self):
        return self.handler.messages

    def wait_for(self, count: int, timeout: float = 20.0):
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.messages


@pytest.fixture
def smtp_sink():
    sink = SmtpSink()
    sink.controller.start()
    yield sink
    sink.controller.stop()


@pytest.fixture
def smtp_settings(settings, smtp_sink):
    """Route this process's email to the sink."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = smtp_sink.port
    return smtp_sink


def worker_env(extra: dict | None = None) -> dict:
    """Environment for a worker process that shares this test run's database and Redis."""
    from django.db import connection

    db = connection.settings_dict
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="newsletter.settings.test",
        DATABASE_URL=f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        REDIS_URL=settings.REDIS_URL,
        PYTHONPATH=str(ROOT),
    )
    env.update(extra or {})
    return env


class WorkerProcess:
    def __init__(self, env: dict, concurrency: int = 2, queues: str | None = None, name: str = "w1"):
        self.log_path = ARTIFACTS / f"celery-{name}-{os.getpid()}.log"
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        cmd = [
            sys.executable, "-m", "celery", "-A", "newsletter", "worker",
            "--loglevel=INFO", f"--concurrency={concurrency}", f"--hostname={name}@%h",
            "--without-gossip", "--without-mingle",
        ]
        if queues:
            cmd.append(f"--queues={queues}")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self._wait_ready()

    def _wait_ready(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"celery worker exited early:\n{self.log_path.read_text()[-3000:]}")
            if b"ready." in self.log_path.read_bytes():
                return
            time.sleep(0.1)
        raise RuntimeError(f"celery worker not ready:\n{self.log_path.read_text()[-3000:]}")

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


@pytest.fixture
def redis_clean():
    """An empty Redis database for this test (broker queues, cache, locks)."""
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL)
    client.flushdb()
    yield client
    client.flushdb()


@pytest.fixture
def celery_worker(transactional_db, redis_clean, smtp_sink):
    """A real `celery worker` process on the real Redis broker, sending email to the SMTP sink."""
    worker = WorkerProcess(
        worker_env(
            {
                "TEST_EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
                "EMAIL_HOST": "127.0.0.1",
                "EMAIL_PORT": str(smtp_sink.port),
            }
        )
    )
    worker.smtp_sink = smtp_sink
    yield worker
    worker.stop()


@pytest.fixture
def topics(db):
    """The curated topics from the data migration (re-created after a transactional test
    truncated the tables)."""
    import importlib

    from django.apps import apps

    from subscriptions.models import Topic

    if not Topic.objects.exists():
        # As the migrations left them. The shipped trained state already covers these topics, so
        # re-creating them must not queue retraining: a worker would rescore every paper while
        # the test stores its own scores.
        from django.db.models.signals import post_save

        from newsletter import signals

        uid = "newsletter.topic_after_save"
        post_save.disconnect(sender=Topic, dispatch_uid=uid)
        try:
            importlib.import_module("subscriptions.migrations.0002_curated_topics").create_topics(apps, None)
            importlib.import_module("subscriptions.migrations.0004_precise_topic_keywords").use_precise_keywords(apps, None)
        finally:
            post_save.connect(signals.retrain_after_topic_change, sender=Topic, dispatch_uid=uid)
    return {t.slug: t for t in Topic.objects.all()}


# --- Digests: a fake Mailgun and workers sending to it ------------------------------------

# Short time-outs and backoffs so retries happen within a test.
DIGEST_WORKER_ENV = {
    "DIGEST_SEND_TIMEOUT": "1.5",
    "DIGEST_RETRY_BACKOFF": "0.2",
    "DIGEST_RETRY_BACKOFF_MAX": "3",
}


@pytest.fixture
def fake_mailgun():
    """A fake Mailgun API on loopback (tests/fake_provider.py)."""
    from .fake_provider import FakeMailgun

    with FakeMailgun() as fake:
        yield fake


@pytest.fixture
def digest_workers(transactional_db, redis_clean):
    """Start real Celery workers with extra environment: `digest_workers(env, name=...)`.
    Tasks queued from the test process go to them (not run eagerly)."""
    started = []

    def start(extra: dict, name: str = "dw1", concurrency: int = 2) -> WorkerProcess:
        celery_app.conf.task_always_eager = False
        celery_app.conf.task_eager_propagates = False
        worker = WorkerProcess(worker_env({**DIGEST_WORKER_ENV, **extra}), concurrency=concurrency, name=name)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture
def mailgun_worker(digest_workers, fake_mailgun):
    """A real worker sending through Anymail's Mailgun backend to the fake Mailgun."""
    worker = digest_workers({"TEST_EMAIL_BACKEND": "anymail.backends.mailgun.EmailBackend", **fake_mailgun.env()})
    worker.fake = fake_mailgun
    return worker


@pytest.fixture
def sendgrid_worker(digest_workers):
    """A real worker sending through Anymail's SendGrid backend to a fake SendGrid."""
    from .fake_provider import FakeSendGrid

    with FakeSendGrid() as fake:
        worker = digest_workers({"TEST_EMAIL_BACKEND": "anymail.backends.sendgrid.EmailBackend", **fake.env()})
        worker.fake = fake
        yield worker


@pytest.fixture
def make_scrape(db):
    """Store a finished scrape run with papers and their topic scores, as the scraper would:
    `make_scrape([{"arxiv_id": ..., "title": ..., "topics": {"agents": 9.0}, ...}], status="ok")`."""
    from django.utils import timezone

    from newsletter.models import Paper, PaperRank, PaperTopicScore, ScrapeRun
    from subscriptions.models import Topic

    def make(papers=(), status="ok", started_at=None, kind="trending"):
        started_at = started_at or timezone.now()
        run = ScrapeRun.objects.create(
            source="https://huggingface.co/papers/trending", kind=kind, status=status,
            started_at=started_at, finished_at=started_at, papers_found=len(papers),
        )
        topic_ids = dict(Topic.objects.values_list("slug", "pk"))
        for rank, spec in enumerate(papers, start=1):
            spec = dict(spec)
            scores = spec.pop("topics", {})
            paper, _ = Paper.objects.update_or_create(arxiv_id=spec.pop("arxiv_id"), defaults=spec)
            PaperRank.objects.create(run=run, paper=paper, rank=rank, upvotes=paper.upvotes)
            for slug, score in scores.items():
                PaperTopicScore.objects.update_or_create(paper=paper, topic_id=topic_ids[slug], defaults={"score": score})
        return run

    return make
