"""Signed links for subscribers, built on django.core.signing.

A token is "<subscriber id>.<signed payload>". The id only says whose key to check the
signature with; the signature (HMAC over SECRET_KEY and a per-purpose salt) is what
authenticates. Preference links also mix in the subscriber's own secret, so replacing that
secret revokes them; unsubscribe links deliberately do not, so that every unsubscribe link
ever sent keeps working (Gmail/Yahoo bulk-sender rules).
"""

from django.conf import settings
from django.core import signing
from django.urls import reverse

from .models import Subscriber


class InvalidToken(Exception):
    """Tampered, truncated, forged, revoked, or for a subscriber that does not exist."""


class ExpiredToken(InvalidToken):
    def __init__(self, subscriber):
        super().__init__("expired")
        self.subscriber = subscriber


CONFIRM = "confirm"
PREFERENCES = "preferences"
UNSUBSCRIBE = "unsubscribe"
VIEW_DIGEST = "view-digest"

# Purposes whose links survive a secret rotation.
_PERMANENT_PURPOSES = {UNSUBSCRIBE}


def _signer(subscriber: Subscriber, purpose: str) -> signing.TimestampSigner:
    # The id is part of the salt so a signature made for one subscriber fails for any other.
    salt = f"subscriptions.{purpose}:{subscriber.pk}"
    if purpose not in _PERMANENT_PURPOSES:
        salt = f"{salt}:{subscriber.secret}"
    return signing.TimestampSigner(salt=salt)


def make_token(subscriber: Subscriber, purpose: str, data: dict | None = None) -> str:
    return f"{subscriber.pk}.{_signer(subscriber, purpose).sign_object(data or {})}"


def read_token(token: str, purpose: str, max_age: int | None = None, queryset=None):
    """Return (subscriber, data) or raise InvalidToken / ExpiredToken."""
    pk, _, signed = (token or "").partition(".")
    if not pk.isdigit() or len(pk) > 18 or not signed:
        raise InvalidToken("malformed")
    subscriber = (queryset or Subscriber.objects).filter(pk=int(pk)).first()
    if subscriber is None:
        raise InvalidToken("unknown subscriber")
    signer = _signer(subscriber, purpose)
    try:
        data = signer.unsign_object(signed, max_age=max_age)
    except signing.SignatureExpired:
        raise ExpiredToken(subscriber) from None
    except (signing.BadSignature, ValueError, UnicodeDecodeError):
        raise InvalidToken("bad signature") from None
    if not isinstance(data, dict):
        raise InvalidToken("bad payload")
    return subscriber, data


def confirm_max_age() -> int:
    return settings.CONFIRMATION_LINK_MAX_AGE


def absolute_url(path: str) -> str:
    return f"{settings.SITE_URL}{path}"


def preferences_url(subscriber: Subscriber) -> str:
    return absolute_url(reverse("subscriptions:preferences", args=[make_token(subscriber, PREFERENCES)]))


def unsubscribe_url(subscriber: Subscriber) -> str:
    return absolute_url(reverse("subscriptions:unsubscribe", args=[make_token(subscriber, UNSUBSCRIBE)]))


def confirm_url(subscriber: Subscriber, choices: dict) -> str:
    return absolute_url(reverse("subscriptions:confirm", args=[make_token(subscriber, CONFIRM, choices)]))
