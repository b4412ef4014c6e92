"""The daily scrape (CELERY_BEAT_SCHEDULE "scrape-papers") and its morning retry
("scrape-papers-retry", which only acts if today's scrape failed or skipped records). A Redis
lock keeps two beats or two workers from scraping at the same time."""

from celery import shared_task
from celery.utils.log import get_task_logger
from django.conf import settings

from newsletter import locks
from newsletter.scraping import run

logger = get_task_logger(__name__)

LOCK_NAME = "scrape-papers"


@shared_task(acks_late=True)
def scrape_papers(url: str | None = None, only_if_needed: bool = False) -> dict:
    """Scrape `url` (default SCRAPE_SOURCE_URL). A failure is recorded on the ScrapeRun and
    mailed to the admins by the scraper itself; it is not a task error to retry blindly."""
    with locks.exclusive(LOCK_NAME, settings.SCRAPE_LOCK_TIMEOUT) as acquired:
        if not acquired:
            logger.info("another scrape is running; this one stands down")
            return {"skipped": "locked"}
        if only_if_needed and not run.needs_retry(url):
            logger.info("today's scrape went fine; no retry needed")
            return {"skipped": "not needed"}
        scrape_run = run.scrape_url(url)
        logger.info("scrape run %s: %s", scrape_run.pk, scrape_run.status)
        return {
            "run": scrape_run.pk,
            "status": scrape_run.status,
            "found": scrape_run.papers_found,
            "new": scrape_run.papers_new,
            "updated": scrape_run.papers_updated,
        }
