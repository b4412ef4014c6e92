"""One scrape run from start to end: record it, fetch (or read a file), parse, check, store,
score topics; on any failure mark the run FAILED, keep every stored paper and alert the
admins."""

import logging
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction
from django.utils.timezone import now

from newsletter import topics
from newsletter.models import ScrapeRun

from . import alerts, fetch, parse, store
from .errors import ScrapeError

logger = logging.getLogger(__name__)


def kind_of(url: str) -> str:
    path = urlsplit(url).path.rstrip("/")
    if path.startswith("/api/"):
        return ScrapeRun.Kind.API
    if path == "/papers" or path.startswith("/papers/date/"):
        return ScrapeRun.Kind.DAILY
    return ScrapeRun.Kind.TRENDING


def scrape_url(url: str | None = None) -> ScrapeRun:
    """Scrape `url` (default SCRAPE_SOURCE_URL). Returns the finished run; check its status."""
    url = url or settings.SCRAPE_SOURCE_URL
    run = ScrapeRun.objects.create(source=url[:500], kind=kind_of(url))
    base = _validators_from(url)
    try:
        response = fetch.fetch(url, etag=base.etag if base else "", last_modified=base.last_modified if base else "")
        run.http_status = response.status
        if response.not_modified:
            if base is None:
                raise ScrapeError(f"{url} answered 304 Not Modified to an unconditional request", http_status=304)
            store.record_not_modified(run, base)
            logger.info("scrape run %s: %s not modified since run %s", run.pk, url, base.pk)
            return run
        run.etag, run.last_modified = response.etag, response.last_modified
        _parse_and_store(run, lambda: parse.parse(response.body, response.content_type))
    except ScrapeError as exc:
        _fail(run, exc)
    except Exception as exc:
        _fail(run, exc)
        raise
    return run


def needs_retry(url: str | None = None) -> bool:
    """Whether today's scrape of `url`'s kind has to be done again: no finished run today, or
    the newest one failed or had to skip records."""
    url = url or settings.SCRAPE_SOURCE_URL
    today = now().replace(hour=0, minute=0, second=0, microsecond=0)
    latest = (
        ScrapeRun.objects.filter(kind=kind_of(url), started_at__gte=today)
        .exclude(status=ScrapeRun.Status.RUNNING)
        .order_by("-started_at", "-pk")
        .first()
    )
    return latest is None or latest.status == ScrapeRun.Status.FAILED or latest.records_skipped > 0


def scrape_file(path: str | Path) -> ScrapeRun:
    """Load a saved HTML page or API JSON response by hand."""
    path = Path(path)
    run = ScrapeRun.objects.create(source=f"file:{path.resolve()}"[:500], kind=ScrapeRun.Kind.FILE)
    try:
        try:
            body = path.read_bytes()
        except OSError as exc:
            raise ScrapeError(f"cannot read {path}: {exc.strerror}") from exc
        if len(body) > settings.SCRAPE_MAX_BYTES:
            raise ScrapeError(f"{path} is {len(body)} bytes, more than the {settings.SCRAPE_MAX_BYTES} allowed")
        content_type = "application/json" if path.suffix.lower() == ".json" else ""
        _parse_and_store(run, lambda: parse.parse(body, content_type))
    except ScrapeError as exc:
        _fail(run, exc)
    except Exception as exc:
        _fail(run, exc)
        raise
    return run


def _parse_and_store(run: ScrapeRun, read) -> None:
    result = read()
    store.check_not_far_fewer(run, len(result.papers))
    # Papers, ranks and topic scores land together or not at all.
    with transaction.atomic():
        papers = store.store_papers(run, result)
        topics.score_papers(papers)


def _validators_from(url: str) -> ScrapeRun | None:
    """The last good run of this very URL that left an ETag or Last-Modified to send back."""
    return (
        ScrapeRun.objects.good()
        .filter(source=url[:500])
        .exclude(etag="", last_modified="")
        .order_by("-started_at", "-pk")
        .first()
    )


def _fail(run: ScrapeRun, exc: Exception) -> None:
    if isinstance(exc, ScrapeError):
        run.error = str(exc)
        run.http_status = exc.http_status or run.http_status
        logger.error("scrape run %s failed: %s", run.pk, exc)
    else:
        run.error = f"internal error: {exc!r}"
        logger.exception("scrape run %s crashed", run.pk)
    run.status = ScrapeRun.Status.FAILED
    run.finished_at = now()
    run.save()
    alerts.alert_failed_run(run)
