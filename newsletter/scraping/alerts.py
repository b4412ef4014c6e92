"""Telling the admins that a scrape failed: a mail to ADMINS (the run stays visible, red, in
the admin whatever happens to the mail)."""

import logging

from django.conf import settings
from django.core.mail import mail_admins
from django.urls import reverse
from django.utils.timezone import now

from newsletter.logs import EventLog
from newsletter.models import ScrapeRun

log = EventLog(__name__)


def alert_failed_run(run: ScrapeRun) -> bool:
    """Mail ADMINS about a failed run and stamp `run.alerted_at`. Returns whether a mail went
    out. A broken mail setup is logged, never raised: the failure is already recorded."""
    if not settings.ADMINS:
        log("scrape.alert_not_mailed", level=logging.ERROR, run=run.pk, reason="ADMINS is empty", error=run.error)
        return False
    # Fixed subject: nothing scraped or remote goes into a header.
    subject = f"Paper scrape failed ({run.kind_label}, run {run.pk})"
    admin_url = settings.SITE_URL + reverse("admin:newsletter_scraperun_change", args=[run.pk])
    message = "\n".join(
        [
            "The paper scrape failed. Every stored paper was kept, and no digest will be built from this run.",
            "",
            f"Source:      {run.source}",
            f"Started:     {run.started_at:%Y-%m-%d %H:%M:%S} UTC",
            f"HTTP status: {run.http_status or '-'}",
            f"Error:       {run.error}",
            "",
            f"Details: {admin_url}",
            "A later run (the morning retry, or `manage.py scrape_papers`) will try again.",
        ]
    )
    try:
        mail_admins(subject, message, fail_silently=False)
    except Exception:  # SMTP down, provider refusing: log it, keep the run as it is.
        log("scrape.alert_not_mailed", level=logging.ERROR, exc_info=True, run=run.pk, reason="the mail failed")
        return False
    run.alerted_at = now()
    run.save(update_fields=["alerted_at"])
    return True
