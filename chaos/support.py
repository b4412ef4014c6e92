"""What only the chaos scripts share: the verdict printer and the disturbances (a Redis
restart, dropped PostgreSQL sessions). Everything they share with the tests and the benches
(processes, the SMTP sink, fake services, databases, seeding, the scenarios) is in
tests/support/."""

import subprocess
import time

from tests.support.databases import PG


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
