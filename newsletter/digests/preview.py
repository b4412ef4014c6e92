"""Digests shown in a browser: a sent one ("view in browser") and the next one of any
subscriber (staff preview). Neither writes anything."""

import zoneinfo
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from newsletter.models import Delivery
from subscriptions.models import Subscriber

from . import selection
from .links import LinkMaker, Recipient, static_headers
from .rendering import renderer


@dataclass
class DigestPreview:
    subscriber: Subscriber
    kind: str
    digest_date: object
    subject: str = ""
    html: str = ""
    text: str = ""
    headers: dict = field(default_factory=dict)
    paper_count: int = 0
    reason: str = ""  # why there would be no email


# The staff preview shows where each personal link goes, never a working one: anyone who may
# view subscribers in the admin would otherwise hold every reader's preferences link.
REDACTED = "REDACTED-IN-PREVIEW"
PERSONAL_LINKS = ("preferences_url", "unsubscribe_url", "view_url")


def _redact_personal_links(values: dict[str, str]) -> dict[str, str]:
    """.../preferences/<token>/ becomes .../preferences/REDACTED-IN-PREVIEW/ (a 400 page)."""
    redacted = dict(values)
    for name in PERSONAL_LINKS:
        route, _, _token = values[name].rstrip("/").rpartition("/")
        redacted[name] = f"{route}/{REDACTED}/"
    for name in values:
        if name.startswith("fb_"):  # a paper's feedback token (LinkMaker.merge_values)
            redacted[name] = REDACTED
    return redacted


def sent_digest_html(delivery: Delivery) -> str:
    """The HTML of a sent digest as its recipient received it, but without their personal
    links (the web copy: see LinkMaker.web_copy_values)."""
    paper_ids = tuple(delivery.content.ordered_papers().values_list("pk", flat=True))
    pool = selection.pool_for_papers(delivery.kind, paper_ids)
    # The content records the papers, not the topics: each shows the reader's (current) ones.
    topic_ids, names = selection.topics_of([delivery.subscriber_id]).get(delivery.subscriber_id, ((), ()))
    digest = renderer.render(paper_ids, pool, delivery.kind, topic_ids, notes={})
    recipient = Recipient(delivery.pk, delivery.subscriber_id, delivery.subscriber.email, delivery.subscriber.secret,
                          names, delivery.digest_date)
    values = LinkMaker().web_copy_values(recipient, paper_ids)
    return digest.html.fill(values)


# A date is done once its delivery finished; a pending one may still go out with this content.
_FINISHED = (Delivery.Status.SENT, Delivery.Status.SKIPPED, Delivery.Status.FAILED)


def next_unsent_date(subscriber: Subscriber, now=None):
    """The subscriber's next digest date that has not been sent: from their local today on,
    the first day they get a digest (any day, or their weekday for weekly digests) with no
    finished delivery."""
    now = now or timezone.now()
    try:
        today = now.astimezone(zoneinfo.ZoneInfo(subscriber.timezone)).date()
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        today = now.date()
    done = set(subscriber.deliveries.filter(digest_date__gte=today, status__in=_FINISHED).values_list("digest_date", flat=True))
    weekly = subscriber.frequency == Subscriber.Frequency.WEEKLY
    day = today
    while day in done or (weekly and day.weekday() != subscriber.weekday):
        day += timedelta(days=1)
    return day


def next_digest(subscriber: Subscriber, now=None) -> DigestPreview:
    """What the subscriber would get if their next unsent digest were built now (nothing is saved)."""
    now = now or timezone.now()
    kind = subscriber.frequency
    local_date = next_unsent_date(subscriber, now)
    preview = DigestPreview(subscriber=subscriber, kind=kind, digest_date=local_date)
    try:
        pool = selection.paper_pool(kind, now)
    except selection.NoGoodScrape as exc:
        preview.reason = f"No digest can be built now: {exc}."
        return preview
    topic_ids, names = selection.topics_of([subscriber.pk]).get(subscriber.pk, ((), ()))
    recipient = Recipient(0, subscriber.pk, subscriber.email, subscriber.secret, names, local_date)
    reader = selection.Reader(subscriber.pk, kind, local_date, topic_ids, subscriber.papers_per_email)
    [paper_ids] = selection.choose([reader], {kind: pool})
    if not paper_ids:
        preview.reason = "Nothing new matches this subscriber's topics: no email would be sent (recorded as skipped)."
        return preview
    digest = renderer.render(paper_ids, pool, kind, topic_ids)
    values = _redact_personal_links(LinkMaker().merge_values(recipient, paper_ids))
    preview.subject = digest.subject_for(values)
    preview.html, preview.text = digest.for_recipient(values)
    preview.headers = {"From": settings.DEFAULT_FROM_EMAIL, "To": subscriber.email, "Subject": preview.subject,
                       **static_headers(), **LinkMaker.headers(values)}
    preview.paper_count = len(paper_ids)
    return preview
