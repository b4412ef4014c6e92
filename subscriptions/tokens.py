"""Signed links for subscribers, built on django.core.signing.

A token is "<subscriber id>.<signed payload>". The id only says whose key to check the
signature with; the signature (HMAC over SECRET_KEY and a per-purpose salt) is what
authenticates. Preference links also mix in the subscriber's own secret, so replacing that
secret revokes them; unsubscribe links deliberately do not, so that every unsubscribe link
ever sent keeps working (Gmail/Yahoo bulk-sender rules).
"""

import re

from django.conf import settings
from django.core import signing
from django.urls import reverse

from newsletter import fast_signing

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
# The personal Atom feed (newsletter/archive/personal.py): revoked with the preference links.
FEED = "feed"

# Purposes whose links survive a secret rotation.
_PERMANENT_PURPOSES = {UNSUBSCRIBE}

# The id before the dot: ASCII digits only. str.isdigit() also takes "²", which int() then
# refuses (a 500), and int() reads Arabic-Indic or full-width digits as numbers.
_SUBSCRIBER_ID = re.compile(r"[0-9]{1,18}")


def _signer(subscriber: Subscriber, purpose: str) -> signing.TimestampSigner:
    # The id is part of the salt so a signature made for one subscriber fails for any other.
    salt = f"subscriptions.{purpose}:{subscriber.pk}"
    if purpose not in _PERMANENT_PURPOSES:
        salt = f"{salt}:{subscriber.secret}"
    return fast_signing.TimestampSigner(salt=salt)  # Django's signature, made faster (a dozen per digest)


def make_token(subscriber: Subscriber, purpose: str, data: dict | None = None) -> str:
    return f"{subscriber.pk}.{_signer(subscriber, purpose).sign_object(data or {})}"


def read_token(token: str, purpose: str, max_age: int | None = None, queryset=None):
    """Return (subscriber, data) or raise InvalidToken / ExpiredToken."""
    pk, _, signed = (token or "").partition(".")
    if not _SUBSCRIBER_ID.fullmatch(pk) or not signed:
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


def read_confirm_token(token: str):
    """A confirmation link: (subscriber, data, expired). Past CONFIRMATION_LINK_MAX_AGE a link
    only asks for a fresh one, until CONFIRMATION_RESEND_MAX_AGE; older ones raise ExpiredToken."""
    resend_max_age = max(settings.CONFIRMATION_RESEND_MAX_AGE, settings.CONFIRMATION_LINK_MAX_AGE)
    subscriber, data = read_token(token, CONFIRM, max_age=resend_max_age)
    try:  # the signature is good: only the age can fail here
        _signer(subscriber, CONFIRM).unsign(token.partition(".")[2], max_age=settings.CONFIRMATION_LINK_MAX_AGE)
    except signing.SignatureExpired:
        return subscriber, data, True
    return subscriber, data, False


def absolute_url(path: str) -> str:
    return f"{settings.SITE_URL}{path}"


def preferences_url(subscriber: Subscriber) -> str:
    return absolute_url(reverse("subscriptions:preferences", args=[make_token(subscriber, PREFERENCES)]))


def unsubscribe_url(subscriber: Subscriber) -> str:
    return absolute_url(reverse("subscriptions:unsubscribe", args=[make_token(subscriber, UNSUBSCRIBE)]))


def feed_url(subscriber: Subscriber) -> str:
    return absolute_url(reverse("archive:feed_personal", args=[make_token(subscriber, FEED)]))


def confirm_url(subscriber: Subscriber, signup_id: int) -> str:
    """The link that confirms one sign-up (its consent-log row): see actions.open_signup."""
    return absolute_url(reverse("subscriptions:confirm", args=[make_token(subscriber, CONFIRM, {"signup": signup_id})]))
