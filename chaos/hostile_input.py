"""Hostile input, all at once, over real HTTP: gunicorn with production settings on
PostgreSQL and Redis, attacked with the battery in tests/support/hostile_cases.py (forged, truncated,
expired and other-subscriber tokens on every link, one-click POST variants, CSRF-less posts,
header injection and XSS in every form field, 10 kB and 1 MB bodies, a sign-up flood from
one IP while another IP signs up). Prints how many cases were tried and how many held.

    .venv/bin/python chaos/hostile_input.py
"""

import argparse
import os
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import requests  # noqa: E402
from requests.adapters import HTTPAdapter  # noqa: E402

from chaos.support import verdict  # noqa: E402
from tests.support.databases import base_env, fresh_database  # noqa: E402
from tests.support.hostile_env import ADMIN_EMAIL, WEBHOOK_ENV  # noqa: E402
from tests.support.net import free_port  # noqa: E402
from tests.support.processes import start_gunicorn, start_worker  # noqa: E402
from tests.support.smtp_sink import SmtpSink  # noqa: E402

FLOOD_LIMIT = 25


class SourceAddressAdapter(HTTPAdapter):
    """Connect from a chosen loopback address, so the server sees different client IPs."""

    def __init__(self, source_ip: str):
        self.source_ip = source_ip
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        kwargs["source_address"] = (self.source_ip, 0)
        super().init_poolmanager(*args, **kwargs)


class RealHTTP:
    def __init__(self, origin: str, sink: SmtpSink):
        self.origin = origin
        self.sink = sink

    def mail_to(self, address: str, quiet: float = 3.0, timeout: float = 60) -> list[str]:
        """The text of every email the site sent to `address`, once the worker has had nothing
        to do for `quiet` seconds (nothing queued, nothing unacknowledged). 3 s, not 1: the
        email a sign-up calls for is queued by the sign-up's own task, and was seen reaching
        the broker 2.3 s after that task finished (the case then read "no email arrived")."""
        import time

        import redis

        broker = redis.Redis.from_url(os.environ["REDIS_URL"])
        deadline, quiet_since = time.monotonic() + timeout, None
        while time.monotonic() < deadline:
            if broker.llen("celery") or broker.llen("digests") or broker.hlen("unacked"):
                quiet_since = None
            elif quiet_since is None:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since >= quiet:
                break
            time.sleep(0.05)
        with self.sink.lock:
            messages = list(self.sink.messages)
        return [m["message"].get_body(preferencelist=("plain",)).get_content() for m in messages
                if address.lower() in str(m["message"]["To"]).lower()]

    def _session(self, source_ip: str) -> requests.Session:
        session = requests.Session()
        session.mount("http://", SourceAddressAdapter(source_ip))
        return session

    def request(self, method, path, data=None, content_type=None, cookies=None, csrf=False, source_ip="127.0.0.1", multipart=False,
                headers=None):
        from tests.support.hostile_cases import Response

        session = self._session(source_ip)
        headers = dict(headers or {})
        if csrf:
            form = session.get(f"{self.origin}/", timeout=10).text
            token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form).group(1)
            data = dict(data or {}, csrfmiddlewaretoken=token)
        for name, value in (cookies or {}).items():
            session.cookies.set(name, value)
        kwargs = {"timeout": 30, "allow_redirects": False, "headers": headers}
        if isinstance(data, str):
            headers["Content-Type"] = content_type or "application/x-www-form-urlencoded"
            kwargs["data"] = data.encode()
        elif multipart and data:
            kwargs["files"] = {k: (None, v) for k, v in data.items()}
        elif data is not None:
            kwargs["data"] = data
        response = session.request(method, f"{self.origin}{path}", **kwargs)
        return Response(response.status_code, response.text, dict(response.headers))


def main() -> int:
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args()
    sink = SmtpSink().start()  # mail_to() reads the links in the messages it keeps
    port = free_port()
    env = base_env(
        "nl_chaos_hostile", 9, SITE_URL=f"http://127.0.0.1:{port}",
        EMAIL_PROVIDER="smtp", EMAIL_HOST="127.0.0.1", EMAIL_PORT=sink.port,
        SIGNUP_RATE_LIMIT=f"{FLOOD_LIMIT}/m", LOG_LEVEL="ERROR", ADMINS=ADMIN_EMAIL, **WEBHOOK_ENV,
    )
    os.environ.update(env)
    fresh_database(env)
    import django

    django.setup()
    from tests.support import hostile_cases

    start_gunicorn(env, port, workers=2)
    start_worker(env, "hostile", concurrency=1)
    http = RealHTTP(f"http://127.0.0.1:{port}", sink)
    world = hostile_cases.World.create()
    results = []
    rotating = RotatingSourceIP(http)  # one for all cases: each new one would start at 127.0.1.1 again
    for case in hostile_cases.CASES:
        results.extend(case(rotating, world))
    results.extend(hostile_cases.case_signup_flood(http, world, FLOOD_LIMIT))
    failed = [name for name, held in results if not held]
    print(f"hostile cases tried: {len(results)}, held: {len(results) - len(failed)}")
    for name in failed:
        print(f"  did not hold: {name}")
    return verdict({f"all {len(results)} hostile cases held": not failed})


class RotatingSourceIP:
    """Moves to the next 127.0.1.x address every 20 requests, so the per-IP sign-up limit
    only bites in the flood case, which picks its own addresses."""

    def __init__(self, http):
        self.http = http
        self.count = 0

    def mail_to(self, address: str) -> list[str]:
        return self.http.mail_to(address)

    def request(self, *args, **kwargs):
        self.count += 1
        kwargs.setdefault("source_ip", f"127.0.1.{(self.count // 20) % 250 + 1}")
        return self.http.request(*args, **kwargs)


if __name__ == "__main__":
    sys.exit(main())
