"""Fetching a source politely and defensively: one requests.Session with connect/read
timeouts, urllib3 retries (exponential backoff with jitter on connection errors, 429 and 5xx,
honouring Retry-After), an identifying User-Agent, conditional GET, a cap on the body size
and on the total time, and robots.txt honoured (fetched with the same session, cached)."""

import hashlib
import logging
import time
from dataclasses import dataclass
from urllib.parse import urlsplit
from urllib.robotparser import RobotFileParser

import requests
import urllib3
from django.conf import settings
from django.core.cache import cache
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from .errors import ScrapeError

logger = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
CHUNK_SIZE = 64 * 1024
# robots.txt for a 401/403: the site refuses to say, so take it as "keep out".
DISALLOW_ALL = "User-agent: *\nDisallow: /\n"


@dataclass(frozen=True)
class FetchResult:
    url: str
    status: int
    body: bytes
    content_type: str = ""
    etag: str = ""
    last_modified: str = ""

    @property
    def not_modified(self) -> bool:
        return self.status == 304


def build_session() -> requests.Session:
    retry = Retry(
        total=settings.SCRAPE_RETRIES,
        connect=settings.SCRAPE_RETRIES,
        read=settings.SCRAPE_RETRIES,
        status=settings.SCRAPE_RETRIES,
        other=0,
        allowed_methods=frozenset({"GET", "HEAD"}),
        status_forcelist=RETRY_STATUSES,
        backoff_factor=settings.SCRAPE_BACKOFF_FACTOR,
        backoff_max=settings.SCRAPE_BACKOFF_MAX,
        backoff_jitter=settings.SCRAPE_BACKOFF_JITTER,
        respect_retry_after_header=True,
        retry_after_max=settings.SCRAPE_RETRY_AFTER_MAX,
        # After the last try, hand back the 429/5xx response so its status can be reported.
        raise_on_status=False,
    )
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.max_redirects = 5
    session.headers.update(
        {
            "User-Agent": settings.SCRAPE_USER_AGENT,
            "Accept": "text/html,application/xhtml+xml,application/json;q=0.9,*/*;q=0.5",
            "Accept-Language": "en",
        }
    )
    return session


def fetch(url: str, *, etag: str = "", last_modified: str = "", session: requests.Session | None = None) -> FetchResult:
    """GET `url` after checking robots.txt. A 304 comes back as a result (nothing new), every
    other failure as ScrapeError."""
    own_session = session is None
    session = session or build_session()
    try:
        if not robots_allow(session, url):
            raise ScrapeError(f"robots.txt of {origin_of(url)} does not allow fetching {url}")
        headers = {}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        response = _get(session, url, headers)
        with response:
            if response.status_code == 304:
                return FetchResult(url=response.url, status=304, body=b"", etag=etag, last_modified=last_modified)
            if response.status_code != 200:
                raise ScrapeError(f"{url} answered HTTP {response.status_code}", http_status=response.status_code)
            body = read_capped(response, settings.SCRAPE_MAX_BYTES)
            return FetchResult(
                url=response.url,
                status=200,
                body=body,
                content_type=response.headers.get("Content-Type", ""),
                etag=response.headers.get("ETag", "")[:300],
                last_modified=response.headers.get("Last-Modified", "")[:100],
            )
    finally:
        if own_session:
            session.close()


def _get(session: requests.Session, url: str, headers: dict) -> requests.Response:
    try:
        return session.get(
            url,
            headers=headers,
            timeout=(settings.SCRAPE_CONNECT_TIMEOUT, settings.SCRAPE_READ_TIMEOUT),
            stream=True,
        )
    except requests.exceptions.RetryError as exc:
        raise ScrapeError(f"{url} kept failing after {settings.SCRAPE_RETRIES} retries: {exc}") from exc
    except requests.exceptions.Timeout as exc:
        raise ScrapeError(f"{url} timed out: {exc}") from exc
    except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:
        raise ScrapeError(f"{url} could not be fetched: {exc}") from exc


def read_capped(response: requests.Response, max_bytes: int) -> bytes:
    """The body, refusing more than `max_bytes` or more than SCRAPE_TOTAL_TIMEOUT seconds
    (the read timeout alone lets a slow trickle go on for ever)."""
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise ScrapeError(f"{response.url} is {declared} bytes, more than the {max_bytes} allowed", http_status=response.status_code)
    deadline = time.monotonic() + settings.SCRAPE_TOTAL_TIMEOUT
    chunks, size = [], 0
    try:
        for chunk in response.iter_content(CHUNK_SIZE):
            size += len(chunk)
            if size > max_bytes:
                raise ScrapeError(f"{response.url} sent more than the {max_bytes} bytes allowed", http_status=response.status_code)
            if time.monotonic() > deadline:
                raise ScrapeError(f"{response.url} took longer than {settings.SCRAPE_TOTAL_TIMEOUT}s to send", http_status=response.status_code)
            chunks.append(chunk)
    except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:
        raise ScrapeError(f"{response.url} broke off while sending: {exc}", http_status=response.status_code) from exc
    return b"".join(chunks)


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def robots_allow(session: requests.Session, url: str) -> bool:
    """Whether robots.txt lets our User-Agent fetch `url`. The file is cached per origin for
    SCRAPE_ROBOTS_CACHE_SECONDS; a 4xx means no rules (401/403: keep out); an unreachable
    robots.txt stops the scrape (RFC 9309: assume complete disallow)."""
    if not settings.SCRAPE_OBEY_ROBOTS:
        return True
    robots_url = origin_of(url) + "/robots.txt"
    key = "scrape:robots:" + hashlib.sha256(robots_url.encode()).hexdigest()
    rules = cache.get(key)
    if rules is None:
        rules = _download_robots(session, robots_url)
        cache.set(key, rules, settings.SCRAPE_ROBOTS_CACHE_SECONDS)
    parser = RobotFileParser()
    parser.parse(rules.splitlines())
    return parser.can_fetch(settings.SCRAPE_USER_AGENT, url)


def _download_robots(session: requests.Session, robots_url: str) -> str:
    response = _get(session, robots_url, {})
    with response:
        if response.status_code == 200:
            return read_capped(response, settings.SCRAPE_ROBOTS_MAX_BYTES).decode("utf-8", errors="replace")
        if response.status_code in (401, 403):
            return DISALLOW_ALL
        if 400 <= response.status_code < 500:
            return ""
        raise ScrapeError(f"{robots_url} answered HTTP {response.status_code}; not scraping without it", http_status=response.status_code)
