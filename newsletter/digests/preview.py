"""Digests shown in a browser: a sent one ("view in browser") and the next one of any
subscriber (staff preview). Neither writes anything."""

import zoneinfo
from dataclasses import dataclass, field

from django.conf import settings
from django.utils import timezone

from newsletter.models import Delivery
from subscriptions.models import Subscriber

from . import claims, selection
from .chunks import topics_of
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


def _recipient(subscriber: Subscriber, delivery_id: int, digest_date) -> Recipient:
    _, names = topics_of([subscriber.pk]).get(subscriber.pk, ((), ()))
    return Recipient(delivery_id, subscriber.pk, subscriber.email, subscriber.secret, names, digest_date)


def sent_digest_html(delivery: Delivery) -> str:
    """The HTML of a sent digest with the recipient's own links, as they received it."""
    paper_ids = claims.contents_papers([delivery.content_id]).get(delivery.content_id, ())
    pool = selection.pool_for_papers(delivery.kind, paper_ids)
    digest = renderer.render(paper_ids, pool, delivery.kind)
    values = LinkMaker().merge_values(_recipient(delivery.subscriber, delivery.pk, delivery.digest_date))
    return digest.html.fill(values)


def next_digest(subscriber: Subscriber, now=None) -> DigestPreview:
    """What the subscriber would get if their digest were built now (nothing is saved)."""
    now = now or timezone.now()
    kind = subscriber.frequency
    try:
        local_date = now.astimezone(zoneinfo.ZoneInfo(subscriber.timezone)).date()
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        local_date = now.date()
    preview = DigestPreview(subscriber=subscriber, kind=kind, digest_date=local_date)
    try:
        pool = selection.paper_pool(kind, now)
    except selection.NoGoodScrape as exc:
        preview.reason = f"No digest can be built now: {exc}."
        return preview
    recipient = _recipient(subscriber, 0, local_date)
    topic_ids, _ = topics_of([subscriber.pk]).get(subscriber.pk, ((), ()))
    sent = selection.already_sent([subscriber.pk], pool.paper_ids).get(subscriber.pk, set())
    paper_ids = pool.choose(topic_ids, sent, subscriber.papers_per_email)
    if not paper_ids:
        preview.reason = "Nothing new matches this subscriber's topics: no email would be sent (recorded as skipped)."
        return preview
    digest = renderer.render(paper_ids, pool, kind)
    links = LinkMaker()
    values = links.merge_values(recipient)
    values["view_url"] = f"{settings.SITE_URL}/"  # no delivery exists yet
    preview.subject = digest.subject
    preview.html, preview.text = digest.for_recipient(values)
    preview.headers = {"From": settings.DEFAULT_FROM_EMAIL, "To": subscriber.email, "Subject": digest.subject,
                       **static_headers(), **LinkMaker.headers(values)}
    preview.paper_count = len(paper_ids)
    return preview
