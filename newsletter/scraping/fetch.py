"""Fetching a source politely and defensively: one requests.Session with connect/read
timeouts, urllib3 retries (exponential backoff with jitter on connection errors, 429 and 5xx,
honouring Retry-After), an identifying User-Agent, conditional GET, a cap on the body size
and on the total time, and robots.txt honoured (fetched with the same session, cached).

Redirects are followed by hand, at most MAX_REDIRECTS of them, and only to the source's own
host or one in SCRAPE_ALLOWED_HOSTS (https only with SCRAPE_REQUIRE_HTTPS); every host is
asked for its own robots.txt before anything else is fetched from it. Errors name URLs, hosts
and status codes, never what a response said."""

import hashlib
import time
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit
from urllib.robotparser import RobotFileParser

import requests
import urllib3
from django.conf import settings
from django.core.cache import cache
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from newsletter.app_settings import app_settings

from .errors import ScrapeError


RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 5
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
        total=app_settings.SCRAPE_RETRIES,
        connect=app_settings.SCRAPE_RETRIES,
        read=app_settings.SCRAPE_RETRIES,
        status=app_settings.SCRAPE_RETRIES,
        other=0,
        allowed_methods=frozenset({"GET", "HEAD"}),
        status_forcelist=RETRY_STATUSES,
        backoff_factor=app_settings.SCRAPE_BACKOFF_FACTOR,
        backoff_max=app_settings.SCRAPE_BACKOFF_MAX,
        backoff_jitter=app_settings.SCRAPE_BACKOFF_JITTER,
        respect_retry_after_header=True,
        retry_after_max=app_settings.SCRAPE_RETRY_AFTER_MAX,
        # After the last try, hand back the 429/5xx response so its status can be reported.
        raise_on_status=False,
    )
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers.update(
        {
            "User-Agent": app_settings.SCRAPE_USER_AGENT,
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
        headers = {}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        response = _get_following(session, url, headers, allowed_hosts(url))
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


def allowed_hosts(url: str) -> frozenset[str]:
    """The hosts a fetch of `url` may reach: its own and SCRAPE_ALLOWED_HOSTS."""
    return frozenset({(urlsplit(url).hostname or "").lower(), *(h.lower() for h in settings.SCRAPE_ALLOWED_HOSTS)})


def _get_following(session: requests.Session, url: str, headers: dict, allowed: frozenset, obey_robots: bool = True) -> requests.Response:
    """GET `url`, following redirects by hand: before each request, the URL must be https (if
    required) on an allowed host, and that host's robots.txt must allow it (`obey_robots`)."""
    target = url
    for _ in range(MAX_REDIRECTS + 1):
        _check_target(url, target, allowed)
        if obey_robots and not robots_allow(session, target, allowed):
            via = "" if target == url else " (it redirects there)"
            raise ScrapeError(f"robots.txt of {origin_of(target)} does not allow fetching {url}{via}")
        response = _get(session, target, headers)
        location = response.headers.get("Location")
        if response.status_code not in REDIRECT_STATUSES or not location:
            return response
        response.close()
        target = urljoin(target, location)
    raise ScrapeError(f"{url} answered with more than {MAX_REDIRECTS} redirects")


def _check_target(url: str, target: str, allowed: frozenset) -> None:
    try:
        parts = urlsplit(target)
        host = (parts.hostname or "").lower()
    except ValueError:
        raise ScrapeError(f"{url} redirected to a URL that cannot be read") from None
    what = url if target == url else f"{url} redirected to a URL that"
    if parts.scheme not in ("http", "https") or (settings.SCRAPE_REQUIRE_HTTPS and parts.scheme != "https"):
        raise ScrapeError(f"{what} is not https: only https URLs are fetched" if settings.SCRAPE_REQUIRE_HTTPS
                          else f"{what} is neither http nor https")
    if host not in allowed:
        raise ScrapeError(f"{url} redirected to {host[:100] or 'no host'}, a host not in SCRAPE_ALLOWED_HOSTS")


def _get(session: requests.Session, url: str, headers: dict) -> requests.Response:
    try:
        return session.get(
            url,
            headers=headers,
            timeout=(app_settings.SCRAPE_CONNECT_TIMEOUT, app_settings.SCRAPE_READ_TIMEOUT),
            stream=True,
            allow_redirects=False,  # _get_following checks each hop first
        )
    except requests.exceptions.RetryError as exc:
        raise ScrapeError(f"{url} kept failing after {app_settings.SCRAPE_RETRIES} retries: {exc}") from exc
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
    deadline = time.monotonic() + app_settings.SCRAPE_TOTAL_TIMEOUT
    chunks, size = [], 0
    try:
        for chunk in response.iter_content(CHUNK_SIZE):
            size += len(chunk)
            if size > max_bytes:
                raise ScrapeError(f"{response.url} sent more than the {max_bytes} bytes allowed", http_status=response.status_code)
            if time.monotonic() > deadline:
                raise ScrapeError(f"{response.url} took longer than {app_settings.SCRAPE_TOTAL_TIMEOUT}s to send", http_status=response.status_code)
            chunks.append(chunk)
    except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:
        raise ScrapeError(f"{response.url} broke off while sending: {exc}", http_status=response.status_code) from exc
    return b"".join(chunks)


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def robots_allow(session: requests.Session, url: str, allowed: frozenset) -> bool:
    """Whether robots.txt lets our User-Agent fetch `url`. The file is cached per origin for
    SCRAPE_ROBOTS_CACHE_SECONDS; a 4xx means no rules (401/403: keep out); an unreachable
    robots.txt stops the scrape (RFC 9309: assume complete disallow). Its redirects (RFC 9309:
    follow up to five) stay on the `allowed` hosts like any other."""
    if not app_settings.SCRAPE_OBEY_ROBOTS:
        return True
    robots_url = origin_of(url) + "/robots.txt"
    key = "scrape:robots:" + hashlib.sha256(robots_url.encode()).hexdigest()
    rules = cache.get(key)
    if rules is None:
        rules = _download_robots(session, robots_url, allowed)
        cache.set(key, rules, app_settings.SCRAPE_ROBOTS_CACHE_SECONDS)
    parser = RobotFileParser()
    parser.parse(rules.splitlines())
    return parser.can_fetch(app_settings.SCRAPE_USER_AGENT, url)


def _download_robots(session: requests.Session, robots_url: str, allowed: frozenset) -> str:
    response = _get_following(session, robots_url, {}, allowed, obey_robots=False)
    with response:
        if response.status_code == 200:
            return read_capped(response, app_settings.SCRAPE_ROBOTS_MAX_BYTES).decode("utf-8", errors="replace")
        if response.status_code in (401, 403):
            return DISALLOW_ALL
        if 400 <= response.status_code < 500:
            return ""
        raise ScrapeError(f"{robots_url} answered HTTP {response.status_code}; not scraping without it", http_status=response.status_code)
