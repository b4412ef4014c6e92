""""Send a test digest to this address": a subscriber's next digest, built as the preview
builds it (their papers, their topics, the reader's personal links redacted), sent through
the digest backend to an address a staff member typed. The subject says it is a test, and
no delivery is recorded, so the reader's real digest is neither skipped nor changed."""

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection

from newsletter.app_settings import app_settings
from newsletter.logs import EventLog
from subscriptions.models import Subscriber

from . import outbox, providers
from .preview import DigestPreview, next_digest

log = EventLog(__name__)

SUBJECT_PREFIX = "[TEST] "


def send_test_digest(subscriber: Subscriber, address: str, by: str = "", now=None) -> DigestPreview:
    """Send the subscriber's next digest to `address`; returns the preview it was built from
    (its `reason` says why nothing was sent, when no digest could be built)."""
    preview = next_digest(subscriber, now)
    if preview.reason:
        return preview
    connection = get_connection(providers.digest_backend(settings.EMAIL_BACKEND), timeout=app_settings.DIGEST_SEND_TIMEOUT)
    message = EmailMultiAlternatives(
        subject=outbox.subject_for(connection, f"{SUBJECT_PREFIX}{preview.subject}"),
        body=preview.text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[address],
        headers={"X-Digest-Test": f"next digest of subscriber {subscriber.pk} for {preview.digest_date}"},
        connection=connection,
    )
    message.attach_alternative(preview.html, "text/html")
    message.send()
    log("digest.test_sent", subscriber=subscriber.pk, digest_date=preview.digest_date, papers=preview.paper_count, by=by)
    return preview
