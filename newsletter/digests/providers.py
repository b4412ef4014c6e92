"""The configured email backend as digest sending sees it.

Which backend sends digests and what it can do (batch size, merge fields, how its refusals
are read) is known to the backend class itself: see newsletter/email_providers. This module
is the digest side's one door to it, with the kinds of send errors.

Batch: providers whose API takes content we render ourselves plus per-recipient merge data and
headers for up to N recipients in one call (each recipient gets their own message). Every
other backend (SMTP, console, Anymail ESPs without a digest backend) sends one message per
recipient over one connection.
"""

from newsletter.email_providers import registry
from newsletter.email_providers.base import DigestBackend
from newsletter.email_providers.errors import (  # noqa: F401  (the kinds, for the digest side)
    DATABASE_ERRORS,
    ConfigurationError,
    RecipientsRefused,
    SendError,
    TransientError,
)


def digest_backend(configured: str) -> str:
    """The backend that sends digests when EMAIL_BACKEND is `configured`."""
    return registry.digest_backend(configured)


def capability_of(connection) -> DigestBackend:
    return registry.capabilities(connection)
