"""Databases of their own for chaos and bench runs on the loopback PostgreSQL and Redis, and
the environment that points the site's processes at them. (pytest-django makes the tests'
database; these are for the scripts.)"""

import os
import secrets
import subprocess

from .processes import PYTHON, ROOT

PG = "postgres://postgres@127.0.0.1:5432"


def base_env(db_name: str, redis_db: int, **extra) -> dict:
    """Production settings on real PostgreSQL and Redis, served over plain HTTP on loopback
    (so no secure-only cookies and no redirect to HTTPS); `extra` may set tuning knobs too
    (tuned_settings.py)."""
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="tests.support.tuned_settings",
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


def default_services(db_name: str, redis_db: int, settings: str = "newsletter.settings.test") -> None:
    """Point this process at its own database and Redis db, unless DATABASE_URL, REDIS_URL and
    DJANGO_SETTINGS_MODULE already say where."""
    os.environ.setdefault("DATABASE_URL", f"{PG}/{db_name}")
    os.environ.setdefault("REDIS_URL", f"redis://127.0.0.1:6379/{redis_db}")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", settings)


def _server_and_name(database_url: str) -> tuple[str, str]:
    server, name = database_url.rsplit("/", 1)
    return f"{server}/postgres", name


def database_exists(database_url: str) -> bool:
    import psycopg

    server, name = _server_and_name(database_url)
    with psycopg.connect(server, autocommit=True) as conn:
        return bool(conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone())


def create_database(database_url: str, drop_first: bool = True) -> None:
    """An empty database at `database_url` (dropped first, unless it is kept if it exists)."""
    import psycopg

    server, name = _server_and_name(database_url)
    with psycopg.connect(server, autocommit=True) as conn:
        if drop_first:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        elif conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            return
        conn.execute(f'CREATE DATABASE "{name}"')


def fresh_database(env: dict) -> None:
    """Drop and re-create the script's own database, migrate it, empty its Redis db."""
    import redis

    create_database(env["DATABASE_URL"])
    subprocess.run([PYTHON, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)
    redis.Redis.from_url(env["REDIS_URL"]).flushdb()


def setup_django(env: dict) -> None:
    """This process uses the same settings as the services it starts."""
    os.environ.update(env)
    import django

    django.setup()


def open_bench_database(reseed: bool, seed) -> bool:
    """A bench's own database at DATABASE_URL: created and seeded (`seed()`, once Django is set
    up) when it does not exist or `reseed` asks, else reused as it is. Returns whether it is new."""
    fresh = reseed or not database_exists(os.environ["DATABASE_URL"])
    if fresh:
        create_database(os.environ["DATABASE_URL"])
    import django

    django.setup()
    if fresh:
        seed()
    return fresh


def database_name() -> str:
    return os.environ["DATABASE_URL"].rsplit("/", 1)[1]


def load_average() -> str:
    """"1.02 0.88 0.60 on 2 CPUs": benches print it beside their figures (others share the CPU)."""
    return f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs"
