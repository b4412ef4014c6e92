"""Shared fixtures. The suite runs against the real services on loopback: PostgreSQL (the
test database pytest-django creates), Redis (a database of its own, flushed per test) and,
where the point is the queueing, a real Celery worker process consuming from Redis."""

import os
from pathlib import Path

import pytest
from django.conf import settings
from django.core.cache import cache

from newsletter.celery import app as celery_app

from .support.hf_server import hf_server, scrape_settings  # noqa: F401  (the scraper tests' fake huggingface.co)
from .support import processes
from .support.processes import CeleryWorker
from .support.smtp_sink import SmtpSink

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "tests" / "artifacts"


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


@pytest.fixture
def smtp_sink():
    """A real SMTP server on loopback keeping every message it receives."""
    with SmtpSink() as sink:
        yield sink


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


def start_worker(env: dict, name: str = "w1", concurrency: int = 2, queues: str | None = None) -> CeleryWorker:
    """A real `celery worker` process with `env` (see worker_env), ready, logging to tests/artifacts/."""
    return processes.start_worker(env, name, concurrency, queues, log_dir=ARTIFACTS)


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
    worker = start_worker(
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
    """A fake Mailgun API on loopback (tests/support/fake_providers.py)."""
    from .support.fake_providers import FakeMailgun

    with FakeMailgun() as fake:
        yield fake


@pytest.fixture
def digest_workers(transactional_db, redis_clean):
    """Start real Celery workers with extra environment: `digest_workers(env, name=...)`.
    Tasks queued from the test process go to them (not run eagerly)."""
    started = []

    def start(extra: dict, name: str = "dw1", concurrency: int = 2) -> CeleryWorker:
        celery_app.conf.task_always_eager = False
        celery_app.conf.task_eager_propagates = False
        worker = start_worker(worker_env({**DIGEST_WORKER_ENV, **extra}), name=name, concurrency=concurrency)
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
    from .support.fake_providers import FakeSendGrid

    with FakeSendGrid() as fake:
        worker = digest_workers({"TEST_EMAIL_BACKEND": "anymail.backends.sendgrid.EmailBackend", **fake.env()})
        worker.fake = fake
        yield worker


@pytest.fixture
def make_scrape(db):
    """Store a finished scrape run with papers and their topic scores, as the scraper would:
    `make_scrape([{"arxiv_id": ..., "title": ..., "topics": {"agents": 9.0}, ...}], status="ok")`."""
    from .support.seeding import make_scrape

    return make_scrape
