"""The daily scrape (CELERY_BEAT_SCHEDULE "scrape-papers") and its morning retry
("scrape-papers-retry", which only acts if today's scrape failed or skipped records). A Redis
lock keeps two beats or two workers from scraping at the same time."""

from celery import shared_task

from newsletter.app_settings import app_settings
from newsletter import locks
from newsletter.logs import EventLog
from newsletter.scraping import run

log = EventLog(__name__)

LOCK_NAME = "scrape-papers"


@shared_task(acks_late=True)
def scrape_papers(url: str | None = None, only_if_needed: bool = False) -> dict:
    """Scrape `url` (default SCRAPE_SOURCE_URL). A failure is recorded on the ScrapeRun and
    mailed to the admins by the scraper itself; it is not a task error to retry blindly."""
    with locks.exclusive(LOCK_NAME, app_settings.SCRAPE_LOCK_TIMEOUT) as acquired:
        if not acquired:
            log("scrape.skipped", reason="another scrape is running")
            return {"skipped": "locked"}
        if only_if_needed and not run.needs_retry(url):
            log("scrape.skipped", reason="today's scrape went fine")
            return {"skipped": "not needed"}
        scrape_run = run.scrape_url(url)
        log("scrape.run", run=scrape_run.pk, status=scrape_run.status)
        return {
            "run": scrape_run.pk,
            "status": scrape_run.status,
            "found": scrape_run.papers_found,
            "new": scrape_run.papers_new,
            "updated": scrape_run.papers_updated,
        }
