"""What the chaos scripts share: a throw-away PostgreSQL database, real service processes
(gunicorn, Celery workers) on loopback, an SMTP sink that counts, and a verdict printer.
Every process started here is stopped when the script exits."""

import atexit
import os
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def base_env(db_name: str, redis_db: int, **extra) -> dict:
    """Production settings on real PostgreSQL and Redis."""
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


def start(name: str, cmd: list[str], env: dict, ready: str | None = None, timeout: float = 60) -> subprocess.Popen:
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    log_path = LOG_DIR / f"{name}.log"
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


def start_gunicorn(env: dict, port: int, workers: int = 4) -> subprocess.Popen:
    cmd = [PYTHON, "-m", "gunicorn", "newsletter.wsgi", f"--bind=127.0.0.1:{port}", f"--workers={workers}",
           "--worker-class=gthread", "--threads=4", "--error-logfile=-"]
    return start(f"gunicorn-{port}", cmd, env, ready="Booting worker")


def start_worker(env: dict, name: str, concurrency: int = 2, queues: str | None = None) -> subprocess.Popen:
    cmd = [PYTHON, "-m", "celery", "-A", "newsletter", "worker", "--loglevel=INFO", f"--concurrency={concurrency}",
           f"--hostname={name}@%h", "--without-gossip", "--without-mingle"]
    if queues:
        cmd.append(f"--queues={queues}")
    return start(f"worker-{name}", cmd, env, ready="ready.")


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
        atexit.register(self.controller.stop)

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
