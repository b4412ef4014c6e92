"""Telling the admins that digests were refused before sending: a mail to ADMINS, at most one
an hour for all workers together (each refusal is logged as event=digest.merge_keys_refused,
and the deliveries keep the reason)."""

from django.conf import settings
from django.core.cache import cache
from django.core.mail import mail_admins

from newsletter.logs import EventLog
from newsletter.models import Paper
from newsletter.scraped import strip_merge_syntax

log = EventLog(__name__)

ALERT_EVERY_SECONDS = 3600


def merge_keys_refused(paper_ids, unexpected: dict[str, int], deliveries: int) -> bool:
    """Mail ADMINS that a digest held merge keys its templates did not insert. Returns whether
    a mail went out; never raises (the refusal is recorded already)."""
    if not settings.ADMINS:
        return False
    try:
        if not cache.add("digests:alerted:merge-keys", True, timeout=ALERT_EVERY_SECONDS):
            return False
        arxiv_ids = Paper.objects.filter(pk__in=list(paper_ids)).values_list("arxiv_id", flat=True)
        # Written so that no provider fills them in: this mail may go through one.
        keys = ", ".join(f"{strip_merge_syntax(key)[:80]} (x{count})" for key, count in sorted(unexpected.items())[:20])
        message = "\n".join(
            [
                "A digest was not sent: its content holds merge keys its templates did not put there. The",
                "provider would have filled each reader's own values (their preferences and unsubscribe links)",
                "into them, wherever they stand.",
                "",
                f"Keys:        {keys}",
                f"Papers:      {', '.join(sorted(arxiv_ids))}",
                f"Deliveries:  {deliveries} in this call, marked failed (not counted against the readers)",
                "",
                "Look for the keys in those papers (title, summary, authors, links) and in the settings every",
                "digest shows (SITE_NAME, SENDER_POSTAL_ADDRESS, DIGEST_LIST_ID). Every refusal is logged as",
                "event=digest.merge_keys_refused; this mail is sent at most once an hour.",
            ]
        )
        mail_admins("Digest not sent: merge keys the templates did not put there", message, fail_silently=False)
    except Exception as exc:  # mail or cache down: the log line and the failed deliveries remain
        log("digest.alert_failed", level=40, alert="merge_keys_refused", error=f"{type(exc).__name__}: {exc}"[:300])
        return False
    return True
