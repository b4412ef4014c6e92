"""What the chaos scripts share: a throw-away PostgreSQL database, real service processes
(gunicorn, Celery workers) on loopback, an SMTP sink that counts, and a verdict printer.
Every process started here is stopped when the script exits."""

import atexit
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from email import message_from_bytes, policy
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
LOG_DIR = ROOT / "var" / "chaos"
PG = "postgres://postgres@127.0.0.1:5432"

_processes: list[subprocess.Popen] = []

# The webhook of the hostile-input runs: whose it is (mail itself goes to an SMTP sink, as
# through that provider's SMTP relay), basic auth "user:password", Mailgun's signing key.
WEBHOOK_ENV = {
    "WEBHOOK_PROVIDER": "mailgun",
    "ANYMAIL_WEBHOOK_SECRET": "hostile-hooks:webhook-secret-for-chaos-runs",
    "MAILGUN_WEBHOOK_SIGNING_KEY": "mailgun-signing-key-for-chaos-runs",
}
# ADMINS of the hostile-input runs: what anyone can trigger must not flood this inbox.
ADMIN_EMAIL = "hostile-admin@example.org"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def base_env(db_name: str, redis_db: int, **extra) -> dict:
    """Production settings on real PostgreSQL and Redis, served over plain HTTP on loopback
    (so no secure-only cookies and no redirect to HTTPS)."""
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="newsletter.settings.production",
        SECRET_KEY=secrets.token_urlsafe(48),
        DEBUG="0",
        ALLOWED_HOSTS="127.0.0.1,localhost",
        SITE_URL="http://127.0.0.1",
        DATABASE_URL=f"{PG}/{db_name}",
        REDIS_URL=f"redis://127.0.0.1:6379/{redis_db}",
        CSRF_COOKIE_SECURE="0",
        SESSION_COOKIE_SECURE="0",
        SECURE_SSL_REDIRECT="0",
        SCRAPE_REQUIRE_HTTPS="0",  # the fake huggingface.co is plain HTTP too
        PYTHONPATH=str(ROOT),
        LOG_LEVEL="WARNING",
    )
    env.update({k: str(v) for k, v in extra.items()})
    return env


def fresh_database(env: dict) -> None:
    """Drop and re-create the script's own database, migrate it, empty its Redis db."""
    import psycopg
    import redis

    name = env["DATABASE_URL"].rsplit("/", 1)[1]
    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    subprocess.run([PYTHON, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)
    redis.Redis.from_url(env["REDIS_URL"]).flushdb()


def start(name: str, cmd: list[str], env: dict, ready: str | None = None, timeout: float = 60, log_dir: Path | None = None) -> subprocess.Popen:
    log_dir = log_dir or LOG_DIR
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    log = open(log_path, "wb")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    proc.log_path = log_path
    _processes.append(proc)
    deadline = time.monotonic() + timeout
    while ready and ready.encode() not in log_path.read_bytes():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{name} did not start:\n{log_path.read_text(errors='replace')[-3000:]}")
        time.sleep(0.1)
    return proc


def start_gunicorn(env: dict, port: int, workers: int = 4, threads: int = 4) -> subprocess.Popen:
    worker_class = "gthread" if threads > 1 else "sync"
    cmd = [PYTHON, "-m", "gunicorn", "newsletter.wsgi", f"--bind=127.0.0.1:{port}", f"--workers={workers}",
           f"--worker-class={worker_class}", f"--threads={threads}", "--error-logfile=-"]
    return start(f"gunicorn-{port}", cmd, env, ready="Booting worker")


def start_worker(env: dict, name: str, concurrency: int = 2, queues: str | None = None, log_name: str | None = None,
                 log_dir: Path | None = None) -> subprocess.Popen:
    cmd = [PYTHON, "-m", "celery", "-A", "newsletter", "worker", "--loglevel=INFO", f"--concurrency={concurrency}",
           f"--hostname={name}@%h", "--without-gossip", "--without-mingle"]
    if queues:
        cmd.append(f"--queues={queues}")
    return start(log_name or f"worker-{name}", cmd, env, ready="ready.", timeout=120, log_dir=log_dir)


def stop(proc: subprocess.Popen, sig=signal.SIGTERM, timeout: float = 20) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@atexit.register
def _stop_all():
    for proc in _processes:
        try:
            stop(proc, timeout=10)
        except ProcessLookupError:
            pass


class CountingSmtpSink:
    """A real SMTP server (aiosmtpd) on loopback counting messages per recipient."""

    def __init__(self, keep_messages: bool = False):
        from aiosmtpd.controller import Controller

        self.per_recipient: Counter = Counter()
        self.subjects: Counter = Counter()
        self.messages: list = []
        self.keep_messages = keep_messages
        self.lock = threading.Lock()
        self.port = free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()
        self._running = True
        atexit.register(self.stop)

    def stop(self) -> None:
        if self._running:
            self._running = False
            self.controller.stop()

    async def handle_DATA(self, server, session, envelope):
        msg = message_from_bytes(envelope.content, policy=policy.default)
        with self.lock:
            for rcpt in envelope.rcpt_tos:
                self.per_recipient[rcpt.lower()] += 1
            self.subjects[str(msg["Subject"])] += 1
            if self.keep_messages:
                self.messages.append(msg)
        return "250 OK"

    @property
    def total(self) -> int:
        return sum(self.per_recipient.values())

    def wait_for_total(self, count: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.total >= count:
                return True
            time.sleep(0.25)
        return self.total >= count


def verdict(checks: dict[str, bool]) -> int:
    """Print each check and the verdict; the exit code for the script."""
    print()
    for name, ok in checks.items():
        print(f"  [{'PASS' if ok else 'FAIL'}] {name}")
    passed = all(checks.values())
    print(f"\nVERDICT: {'PASS' if passed else 'FAIL'} ({sum(checks.values())}/{len(checks)} checks held)")
    return 0 if passed else 1


# --- Disturbances -------------------------------------------------------------------------

REDIS_START = ["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "--port", "6379", "--save", "", "--appendonly", "no"]


def redis_up() -> bool:
    result = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", "6379", "ping"], capture_output=True, text=True, timeout=5)
    return result.stdout.strip() == "PONG"


def restart_redis(down_for: float = 1.0) -> float:
    """Shut the shared Redis down without saving and start it again; returns the seconds it
    was away. Every Redis db is emptied: queued tasks are lost, as on a real broker crash."""
    print("WARNING: restarting the shared Redis on 127.0.0.1:6379: every db on it is emptied, "
          "other engineers' runs using it will see a short outage", flush=True)
    started = time.monotonic()
    subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", "6379", "shutdown", "nosave"], capture_output=True, timeout=10)
    deadline = time.monotonic() + 10
    while redis_up() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(down_for)
    subprocess.run(REDIS_START, check=True, capture_output=True, timeout=10)
    deadline = time.monotonic() + 10
    while not redis_up():
        if time.monotonic() > deadline:
            raise RuntimeError("Redis did not come back")
        time.sleep(0.05)
    return time.monotonic() - started


def drop_database_connections(db_name: str) -> int:
    """Terminate every session on `db_name` only (as a PostgreSQL restart would, without
    disturbing other databases on the server). Returns how many were terminated."""
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            [db_name],
        ).fetchall()
    return sum(1 for (done,) in rows if done)


class Worker:
    """A `celery worker` whose pool shares a process group of its own, so `kill()` SIGKILLs
    all of it at once (an OOM kill, a lost machine) and `start()` brings it back."""

    def __init__(self, env: dict, name: str, concurrency: int = 2, queues: str | None = None, log_dir: Path | None = None):
        self.env, self.name, self.concurrency, self.queues = env, name, concurrency, queues
        self.log_dir = log_dir or LOG_DIR
        self.incarnation = 0
        self.proc: subprocess.Popen | None = None
        self.log_paths: list[Path] = []

    def start(self) -> "Worker":
        self.incarnation += 1
        self.proc = start_worker(self.env, self.name, self.concurrency, self.queues,
                                 log_name=f"worker-{self.name}-{self.incarnation}", log_dir=self.log_dir)
        self.log_paths.append(self.proc.log_path)
        return self

    def kill(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)

    def output(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in self.log_paths if p.exists())


# --- A fake Mailgun for chaos runs ------------------------------------------------------------

from tests.fake_provider import FakeMailgun  # noqa: E402  (the tests' fake, shared)

# A call counts as in flight from its arrival at the provider until its answer was written,
# plus this long for the worker to read the answer and record it.
RECORD_GRACE = 0.25


class ChaosMailgun(FakeMailgun):
    """The tests' fake Mailgun with what chaos runs need on top: a latency per call (a real
    API takes a few hundred ms, the window a kill lands in), the moment each answer was
    written (which calls were in flight when), and a random mix of failures per call:
    `mix=[("500", 0.10), ("429", 0.05), ("timeout", 0.03)]`."""

    def __init__(self, latency: float = 0.0, mix=(), seed: int | None = None, retry_after=(1, 3), **kwargs):
        self.latency = latency
        self.mix = list(mix)
        self.random = random.Random(seed)
        self.retry_after = retry_after
        self._local = threading.local()
        # One call at a time through the bookkeeping (answers are written in parallel).
        self._plan_lock = threading.Lock()
        super().__init__(**kwargs)

    def _draw(self):
        roll = self.random.random()
        for answer, share in self.mix:
            if roll < share:
                return (answer, self.random.randint(*self.retry_after)) if answer == "429" else (answer,)
            roll -= share
        return None

    def _handle(self, path, headers, body):
        with self._plan_lock:
            # Answers queued with fail_next() come first; otherwise draw one from the mix.
            planned = self._script[0] if self._script else self._draw()
            drawn = planned is not None and not self._script
            if drawn:
                self.fail_next(planned)
            before = len(self.calls)
            status, payload, answer_headers, hang = super()._handle(path, headers, body)
            call = self.calls[before] if len(self.calls) > before else None
            if drawn and call is None:
                self._script.pop()  # refused before it became a call (auth, path): not used
        if call is not None:
            call.planned = planned[0] if planned else ""
            call.retry_after = planned[1] if planned and planned[0] == "429" else None
            call.finished = None
            self._local.call = call
        return status, payload, answer_headers, hang + self.latency

    def _handler_class(self):
        base = super()._handler_class()
        fake = self

        class TimedHandler(base):
            def do_POST(self):
                fake._local.call = None
                try:
                    super().do_POST()
                finally:
                    call = fake._local.call
                    if call is not None:
                        call.finished = time.monotonic()

        return TimedHandler

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()
            self.accepted.clear()
            self.accepted_count = 0
            self._script.clear()

    def per_recipient(self) -> Counter:
        """Messages the provider accepted, per address."""
        from email.utils import parseaddr

        counts: Counter = Counter()
        for call in list(self.calls):
            if call.accepted:
                counts.update(parseaddr(r)[1].lower() for r in call.recipients)
        return counts

    def in_flight(self, at: float, grace: float = RECORD_GRACE) -> list:
        """Accepted calls in flight at monotonic time `at`."""
        return [
            c for c in list(self.calls)
            if c.accepted and c.started <= at and (getattr(c, "finished", None) is None or c.finished + grace >= at)
        ]


def duplicates_of(counts: Counter) -> int:
    """Messages beyond the first per address."""
    return sum(n - 1 for n in counts.values() if n > 1)


# --- Digest runs (Django must be set up) ----------------------------------------------------

SAMPLE_PAGE = ROOT / "tests" / "fixtures" / "hf" / "trending_page_sample.html"


def setup_django(env: dict) -> None:
    """This process uses the same settings as the services it starts."""
    os.environ.update(env)
    import django

    django.setup()


def seed_scrape():
    """A good scrape of the sample trending page through the real scraper (parse, store,
    topic scores)."""
    from newsletter.scraping.run import scrape_file

    run = scrape_file(SAMPLE_PAGE)
    if run.status != run.Status.OK:
        raise RuntimeError(f"seed scrape failed: {run.error}")
    return run


def seed_subscribers(count: int, seed: int = 1, inactive_every: int = 40, prefix: str = "reader",
                     topic_sets: int = 8) -> tuple[set[str], set[str]]:
    """`count` subscribers, each with one of `topic_sets` sets of one to three topics that have
    papers in the newest good scrape (readers cluster on popular choices, so digests are
    shared) and 5 or 10 papers per email; every `inactive_every`-th one is unsubscribed or
    paused. Returns (addresses that must get exactly one digest, addresses that must get none)."""
    from django.conf import settings
    from django.utils import timezone

    from newsletter.digests import selection
    from newsletter.models import PaperRank, PaperTopicScore
    from subscriptions.models import Subscriber

    rng = random.Random(seed)
    _, data_run = selection.source_runs()
    papers = PaperRank.objects.filter(run=data_run).values("paper_id")
    topic_ids = sorted(set(
        PaperTopicScore.objects.filter(paper_id__in=papers, score__gte=settings.DIGEST_MIN_TOPIC_SCORE)
        .values_list("topic_id", flat=True)
    ))
    if not topic_ids:
        raise RuntimeError("no topic has papers in the seed scrape")
    menu = [rng.sample(topic_ids, rng.randint(1, min(3, len(topic_ids)))) for _ in range(topic_sets)]
    now = timezone.now()
    expected, excluded = set(), set()
    rows, chosen = [], []
    for i in range(count):
        email = f"{prefix}{i}@example.org"
        status, paused = Subscriber.Status.ACTIVE, False
        if inactive_every and i % inactive_every == inactive_every - 1:
            if (i // inactive_every) % 2:
                paused = True
            else:
                status = Subscriber.Status.UNSUBSCRIBED
        (expected if status == Subscriber.Status.ACTIVE and not paused else excluded).add(email)
        rows.append(Subscriber(email=email, status=status, paused=paused, confirmed_at=now,
                               papers_per_email=rng.choice((5, 10))))
        chosen.append(rng.choice(menu))
    through = Subscriber.topics.through
    for start in range(0, count, 2000):
        batch = Subscriber.objects.bulk_create(rows[start : start + 2000])
        through.objects.bulk_create(
            [through(subscriber_id=s.pk, topic_id=t) for s, topics in zip(batch, chosen[start : start + 2000]) for t in topics]
        )
    return expected, excluded


def delivery_counts() -> Counter:
    """Deliveries per status."""
    from django.db.models import Count

    from newsletter.models import Delivery

    return Counter(dict(Delivery.objects.order_by().values_list("status").annotate(n=Count("id"))))


def drive_digests(time_limit: float, redispatch_every: float, poll: float = 0.5, progress_every: float = 10.0) -> dict:
    """The beat-less path: run the dispatcher now (as `send_digests --all --workers` does) and
    again every `redispatch_every` seconds while deliveries are open (beat's job, every 15
    minutes in production), until none is open or `time_limit` is up. A broker or database
    outage during a dispatcher run is waited out like beat would: the next run comes."""
    from django.db import connection

    from newsletter.digests import dispatch
    from newsletter.models import Delivery

    open_states = [Delivery.Status.PENDING, Delivery.Status.SENDING]
    started = time.monotonic()
    runs = errors = 0
    next_dispatch = started
    next_progress = started + progress_every
    open_rows = None
    while True:
        now = time.monotonic()
        if now >= next_dispatch:
            try:
                dispatch.dispatch(ignore_hour=True)
                runs += 1
            except Exception as exc:  # Redis or PostgreSQL away: the next run picks it up
                errors += 1
                print(f"  dispatcher run failed ({type(exc).__name__}: {str(exc)[:120]}); next one in {redispatch_every:.0f} s", flush=True)
                connection.close()
            next_dispatch = now + redispatch_every
        try:
            open_rows = Delivery.objects.filter(status__in=open_states).count()
        except Exception:
            connection.close()
            open_rows = None
        if runs and open_rows == 0:
            break
        if now - started > time_limit:
            break
        if now >= next_progress:
            print(f"  {now - started:5.0f} s: {open_rows} deliveries open", flush=True)
            next_progress = now + progress_every
        time.sleep(poll)
    return {"seconds": time.monotonic() - started, "dispatcher_runs": runs, "dispatch_errors": errors, "open": open_rows}


def reset_digests() -> None:
    """Forget every delivery (for a second run over the same subscribers)."""
    from newsletter.models import Delivery, DigestContent

    Delivery.objects.all().delete()
    DigestContent.objects.all().delete()
