"""A real HTTP server on 127.0.0.1 standing in for huggingface.co: it serves the fixtures and
scripted replies (status, headers, delays, missing Content-Length) and records every request
it got, so tests drive the real fetching code over a real socket.

Use the `hf_server` fixture (import it into the test module) and `scrape_settings` to point
the scraper at it with small timeouts and backoffs."""

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from .net import free_port

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "hf"
API_FILES = sorted(FIXTURES.glob("api_daily_papers_20*.json"))
SAMPLE_PAGE = FIXTURES / "trending_page_sample.html"
HOSTILE_API = FIXTURES / "api_daily_papers_hostile.json"
ALLOW_ALL_ROBOTS = "User-agent: *\nAllow: /\n"


def fixture_bytes(name: str | Path) -> bytes:
    return (FIXTURES / name).read_bytes()


def fixture_items(name: str | Path) -> list:
    return json.loads(fixture_bytes(name))


@dataclass
class Reply:
    status: int = 200
    body: bytes | str = b""
    headers: dict = field(default_factory=dict)
    delay: float = 0.0  # seconds before the status line (a read timeout)
    content_length: bool = True  # False: no Content-Length, the body ends when the socket closes
    content_type: str = "text/html; charset=utf-8"
    trickle: tuple[int, float] | None = None  # (bytes, seconds): send the body this slowly

    @classmethod
    def html(cls, body, **kw):
        return cls(body=body, **kw)

    @classmethod
    def json(cls, body, **kw):
        return cls(body=body, content_type="application/json; charset=utf-8", **kw)


@dataclass
class Request:
    path: str
    headers: dict
    at: float


class HFServer:
    def __init__(self, host: str = "127.0.0.1"):
        self.routes: dict[str, list] = {}
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self.route("/robots.txt", Reply(body=ALLOW_ALL_ROBOTS, content_type="text/plain"))
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                request = Request(self.path, {k.lower(): v for k, v in self.headers.items()}, time.monotonic())
                with server._lock:
                    server.requests.append(request)
                reply = server._next_reply(self.path, request)
                try:
                    self._send(reply)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout, size cap): that is what some tests want

            def _send(self, reply: Reply):
                if reply.delay:
                    time.sleep(reply.delay)
                body = reply.body.encode() if isinstance(reply.body, str) else reply.body
                self.send_response(reply.status)
                if reply.status != 304:
                    self.send_header("Content-Type", reply.content_type)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                if reply.content_length:
                    self.send_header("Content-Length", str(len(body)))
                else:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                self.end_headers()
                if reply.status != 304 and reply.trickle:
                    size, pause = reply.trickle
                    for start in range(0, len(body), size):
                        self.wfile.write(body[start : start + size])
                        self.wfile.flush()
                        time.sleep(pause)
                elif reply.status != 304:
                    self.wfile.write(body)

        # Another loopback address (127.0.0.2) is another host, e.g. a redirect target.
        self.httpd = ThreadingHTTPServer((host, 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def route(self, path: str, *replies):
        """Serve `replies` in turn at `path` (the last one repeats). A reply may be a callable
        taking the Request, for answers that depend on request headers."""
        self.routes[path] = list(replies)

    def _next_reply(self, path: str, request: Request) -> Reply:
        with self._lock:
            replies = self.routes.get(path)
            if not replies:
                return Reply(status=404, body="not found", content_type="text/plain")
            reply = replies.pop(0) if len(replies) > 1 else replies[0]
        return reply(request) if callable(reply) else reply

    def url(self, path: str) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}{path}"

    def hits(self, path: str) -> list[Request]:
        return [r for r in self.requests if r.path == path]

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def closed_port_url(path: str = "/papers/trending") -> str:
    """A loopback URL nothing listens on (connection refused)."""
    return f"http://127.0.0.1:{free_port()}{path}"


@pytest.fixture
def hf_server():
    server = HFServer().start()
    yield server
    server.stop()


@pytest.fixture
def scrape_settings(settings, hf_server):
    """The scraper pointed at hf_server, with retries that take milliseconds, not minutes."""
    settings.SCRAPE_SOURCE_URL = hf_server.url("/papers/trending")
    settings.SCRAPE_RETRIES = 3
    settings.SCRAPE_BACKOFF_FACTOR = 0.01
    settings.SCRAPE_BACKOFF_JITTER = 0.01
    settings.SCRAPE_BACKOFF_MAX = 0.1
    settings.SCRAPE_RETRY_AFTER_MAX = 5
    settings.SCRAPE_CONNECT_TIMEOUT = 1.0
    settings.SCRAPE_READ_TIMEOUT = 0.3
    settings.SCRAPE_TOTAL_TIMEOUT = 10
    settings.ADMINS = [("Ops", "ops@example.org")]
    return settings
