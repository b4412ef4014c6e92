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
