"""One scrape run from start to end: record it, fetch (or read a file), let the paper source
read it (newsletter/sources/), check, store, assign topics; on any failure mark the run
FAILED, keep every stored paper and alert the admins."""

import logging
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils.timezone import now

from newsletter import sources, topic_assignment
from newsletter.logs import EventLog
from newsletter.models import ScrapeRun

from . import alerts, fetch, store
from .errors import ScrapeError

log = EventLog(__name__)


def kind_of(url: str) -> str:
    """The page kind of `url` ("" if no registered source knows it)."""
    found = sources.for_url(url)
    return found[1] if found else ""


def scrape_url(url: str | None = None) -> ScrapeRun:
    """Scrape `url` (default SCRAPE_SOURCE_URL). Returns the finished run; check its status."""
    url = url or settings.SCRAPE_SOURCE_URL
    found = sources.for_url(url)
    run = ScrapeRun.objects.create(source=url[:500], kind=found[1] if found else "")
    base = _validators_from(url)
    try:
        if found is None:
            raise ScrapeError(f"no paper source (PAPER_SOURCES) reads {url[:200]}")
        source = found[0]
        response = fetch.fetch(url, etag=base.etag if base else "", last_modified=base.last_modified if base else "")
        run.http_status = response.status
        if response.not_modified:
            if base is None:
                raise ScrapeError(f"{url} answered 304 Not Modified to an unconditional request", http_status=304)
            store.record_not_modified(run, base)
            log("scrape.not_modified", run=run.pk, url=url, since_run=base.pk)
            return run
        run.etag, run.last_modified = response.etag, response.last_modified
        _parse_and_store(run, lambda: source.parse(response.body, response.content_type))
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
    """Load a saved page or API response by hand, read by the default source."""
    path = Path(path)
    run = ScrapeRun.objects.create(source=f"file:{path.resolve()}"[:500], kind=sources.FILE_KIND)
    try:
        try:
            body = path.read_bytes()
        except OSError as exc:
            raise ScrapeError(f"cannot read {path}: {exc.strerror}") from exc
        if len(body) > settings.SCRAPE_MAX_BYTES:
            raise ScrapeError(f"{path} is {len(body)} bytes, more than the {settings.SCRAPE_MAX_BYTES} allowed")
        content_type = "application/json" if path.suffix.lower() == ".json" else ""
        _parse_and_store(run, lambda: sources.default().parse(body, content_type))
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
        topic_assignment.assign_topics(papers)


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
        log("scrape.failed", level=logging.ERROR, run=run.pk, error=str(exc))
    else:
        run.error = f"internal error: {exc!r}"
        log("scrape.crashed", level=logging.ERROR, exc_info=True, run=run.pk)
    run.status = ScrapeRun.Status.FAILED
    run.finished_at = now()
    run.save()
    alerts.alert_failed_run(run)
