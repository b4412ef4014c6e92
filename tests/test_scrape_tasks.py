"""Scheduling: the beat entries, the morning retry that only acts when needed, and the Redis
lock that keeps two workers from scraping at once (in-process and with a real worker)."""

import json
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils.timezone import now

from newsletter import locks
from newsletter.models import Paper, ScrapeRun
from newsletter.scraping.run import needs_retry
from newsletter.tasks.scrape import LOCK_NAME, scrape_papers

from newsletter.celery import app as celery_app

from .conftest import ROOT, start_worker, worker_env
from .support.hf_server import HOSTILE_API, SAMPLE_PAGE, Reply

TRENDING = "/papers/trending"


def test_beat_runs_the_scrape_daily_and_retries_later():
    daily = settings.CELERY_BEAT_SCHEDULE["scrape-papers"]
    retry = settings.CELERY_BEAT_SCHEDULE["scrape-papers-retry"]
    assert daily["task"] == retry["task"] == "newsletter.tasks.scrape.scrape_papers"
    assert (daily["schedule"].hour, daily["schedule"].minute) == ({5}, {0})
    assert daily.get("kwargs", {}) == {}
    assert retry["kwargs"] == {"only_if_needed": True}
    assert min(retry["schedule"].hour) > 5


def test_scrape_time_is_configurable():
    code = (
        "import json; from django.conf import settings; import django; django.setup(); "
        "s = settings.CELERY_BEAT_SCHEDULE; "
        "print(json.dumps([sorted(s['scrape-papers']['schedule'].hour), sorted(s['scrape-papers']['schedule'].minute), "
        "sorted(s['scrape-papers-retry']['schedule'].hour)]))"
    )
    env = {**worker_env(), "SCRAPE_HOUR": "6", "SCRAPE_MINUTE": "45", "SCRAPE_RETRY_HOUR": "9"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [[6], [45], [9]]


@pytest.mark.django_db
def test_task_scrapes(scrape_settings, hf_server):
    hf_server.route(TRENDING, Reply.html(SAMPLE_PAGE.read_bytes()))
    result = scrape_papers.delay().get()
    assert result["status"] == "ok" and (result["found"], result["new"]) == (17, 17)
    assert Paper.objects.count() == 17


@pytest.mark.django_db
@pytest.mark.parametrize("redis", [True, False], ids=["redis-lock", "cache-add-lock"])
def test_task_stands_down_while_the_lock_is_held(scrape_settings, hf_server, redis):
    if not redis:
        scrape_settings.REDIS_URL = ""  # the embedded setup's cache.add() lock
    hf_server.route(TRENDING, Reply.html(SAMPLE_PAGE.read_bytes()))
    with locks.exclusive(LOCK_NAME, 60) as acquired:
        assert acquired
        with locks.exclusive(LOCK_NAME, 60) as again:
            assert not again
        assert scrape_papers.delay().get() == {"skipped": "locked"}
    assert hf_server.hits(TRENDING) == []
    # Released: the next run goes ahead.
    assert scrape_papers.delay().get()["status"] == "ok"


def test_redis_lock_is_redis_pys_and_expires(redis_clean):
    from redis.lock import Lock

    client = locks.redis_client()
    assert client is not None
    assert isinstance(client.lock("probe"), Lock)
    with locks.exclusive("short", 1) as acquired:
        assert acquired
        time.sleep(1.2)  # the holder "died": the lock has expired
        with locks.exclusive("short", 1) as again:
            assert again


@pytest.mark.django_db
def test_retry_run_only_acts_when_todays_scrape_failed(scrape_settings, hf_server):
    down = [Reply(status=503)] * (1 + scrape_settings.SCRAPE_RETRIES)  # one try and every retry
    hf_server.route(TRENDING, *down, Reply.html(SAMPLE_PAGE.read_bytes()))
    assert needs_retry()  # nothing today yet
    failed = scrape_papers.delay().get()
    assert failed["status"] == "failed"
    assert needs_retry()
    assert scrape_papers.delay(only_if_needed=True).get()["status"] == "ok"
    assert not needs_retry()
    assert scrape_papers.delay(only_if_needed=True).get() == {"skipped": "not needed"}
    # Yesterday's good run does not count for today.
    ScrapeRun.objects.update(started_at=now() - timedelta(days=1))
    assert needs_retry()


@pytest.mark.django_db
def test_retry_run_acts_after_a_run_that_skipped_records(scrape_settings, hf_server):
    api = "/api/daily_papers"
    hf_server.route(api, Reply.json(HOSTILE_API.read_bytes()))
    scrape_settings.SCRAPE_SOURCE_URL = hf_server.url(api)
    assert scrape_papers.delay().get()["status"] == "ok"
    assert ScrapeRun.objects.get().records_skipped == 3
    assert needs_retry()


@pytest.mark.worker
def test_two_workers_never_scrape_at_once(transactional_db, redis_clean, hf_server, topics):
    """Two scrape tasks queued together on a real worker with two processes: one scrapes, the
    other finds the Redis lock taken and stands down."""
    celery_app.conf.task_always_eager = False
    hf_server.route(TRENDING, Reply.html(SAMPLE_PAGE.read_bytes(), delay=2.0))
    worker = start_worker(worker_env({"SCRAPE_SOURCE_URL": hf_server.url(TRENDING)}), name="scrape", concurrency=2)
    try:
        scrape_papers.delay()
        scrape_papers.delay()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and worker.output().count("succeeded") < 2:
            time.sleep(0.2)
        log = worker.output()
        assert log.count("succeeded") == 2, log[-3000:]
        assert "another scrape is running" in log
    finally:
        worker.stop()
    assert len(hf_server.hits(TRENDING)) == 1
    assert ScrapeRun.objects.get().status == ScrapeRun.Status.OK
    assert Paper.objects.count() == 17
