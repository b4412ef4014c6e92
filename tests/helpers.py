"""Small helpers shared by tests: read links out of received emails, make subscribers."""

import re

from subscriptions import tokens
from subscriptions.models import Subscriber

LINK_RE = re.compile(r"https?://[^\s\"'<>]+")


def links_in(text: str, path_part: str) -> list[str]:
    return [u for u in LINK_RE.findall(text) if path_part in u]


def path_of(url: str) -> str:
    return re.sub(r"^https?://[^/]+", "", url)


def email_text(message) -> str:
    """Plain-text body of a django EmailMessage (locmem outbox) or an email.message.EmailMessage."""
    if hasattr(message, "body"):
        return message.body
    return message.get_body(preferencelist=("plain",)).get_content()


def make_subscriber(email="reader@example.org", status=Subscriber.Status.ACTIVE, topics=(), **fields) -> Subscriber:
    subscriber = Subscriber.objects.create(email=email, status=status, **fields)
    if topics:
        subscriber.topics.set(topics)
    return subscriber


def preferences_path(subscriber) -> str:
    return path_of(tokens.preferences_url(subscriber))


def unsubscribe_path(subscriber) -> str:
    return path_of(tokens.unsubscribe_url(subscriber))


def sent_digest(subscriber, esp: str) -> str:
    """Record a digest as sent to `subscriber` through `esp` (as the sender stores Anymail's
    message id) and return that id as the provider's webhook events carry it."""
    import uuid
    from datetime import timedelta

    from django.utils import timezone

    from newsletter.models import Delivery

    if esp == "mailgun":  # the send API answers "<id>"; events carry the bare id
        carried = f"{timezone.now():%Y%m%d%H%M%S}.{uuid.uuid4().hex[:12]}@mg.example.org"
        stored = f"<{carried}>"
    else:  # Postmark's MessageID; SendGrid: Anymail's own anymail_id (a UUID) in custom_args
        stored = carried = str(uuid.uuid4())
    Delivery.objects.create(
        subscriber=subscriber, digest_date=timezone.now().date() - timedelta(days=subscriber.deliveries.count()),
        status=Delivery.Status.SENT, sent_at=timezone.now(), provider_message_id=stored,
    )
    return carried


# A subscriber's token in a link: /preferences/<t>/, /unsubscribe/<t>/, /confirm/<t>/, /digest/<t>/.
PERSONAL_LINK_RE = re.compile(r"/(?:preferences|unsubscribe|confirm|digest)/[^/\s\"'<>]+/")


def personal_links(html: str) -> list[str]:
    """The links in a page or email that carry someone's token (the bare /preferences/ form does not)."""
    return PERSONAL_LINK_RE.findall(html)


def working_tokens_in(text: str, subscriber) -> set[str]:
    """Every token in `text` (HTML-escaped or not) that opens something of `subscriber`'s:
    their preferences, their unsubscribe link or one of their digests."""
    import html

    found = set()
    text = html.unescape(html.unescape(text))  # an email shown in a srcdoc attribute is escaped twice
    for candidate in set(re.findall(rf"\b{subscriber.pk}\.[\w:.-]+", text)):
        for purpose in (tokens.PREFERENCES, tokens.UNSUBSCRIBE, tokens.VIEW_DIGEST):
            try:
                tokens.read_token(candidate, purpose)
            except tokens.InvalidToken:
                continue
            found.add(candidate)
    return found
