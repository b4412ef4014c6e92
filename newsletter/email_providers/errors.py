"""The kinds of send errors, whatever the provider.

Transient: retry later (connection errors, time-outs, 429, 5xx, a database restart).
Recipients refused: permanent for those recipients; the others go on.
Configuration: our settings or account are wrong; stop and tell the admins, lose nothing.

Each backend reads its own provider's answers into these kinds (base.DigestBackend.classify_error);
what SMTP answers is read the same way for every backend, here.
"""

import email.utils
import smtplib
import socket
from datetime import datetime, timezone

import redis
from django.db import InterfaceError, OperationalError


class SendError(Exception):
    pass


class TransientError(SendError):
    """Try again later; `retry_after` (seconds) if the provider said when."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class ConfigurationError(SendError):
    """The provider refuses us, not a recipient (bad key, unknown domain, unsupported feature)."""


class RecipientsRefused(SendError):
    """The provider refused some recipients for good; `addresses` (lower-case) may be empty
    when the provider did not say which."""

    def __init__(self, message: str, addresses: set[str]):
        super().__init__(message)
        self.addresses = addresses


# Database hiccups (a restart, dropped connections) are transient too: nothing was sent yet.
DATABASE_ERRORS = (OperationalError, InterfaceError)


def retry_after_seconds(value) -> float | None:
    """Retry-After as seconds or an HTTP date (RFC 9110)."""
    if not value:
        return None
    value = str(value).strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def classify_smtp_error(exc: Exception, recipients: list[str]) -> SendError | None:
    """SMTP answers, network errors and our own services' hiccups; None: not a sending error
    (a bug, let it raise)."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = {addr.lower(): code for addr, (code, _msg) in exc.recipients.items()}
        permanent = {addr for addr, code in codes.items() if code >= 500}
        if permanent:
            return RecipientsRefused(f"SMTP refused: {exc.recipients}", permanent)
        return TransientError(f"SMTP recipients deferred: {exc.recipients}")
    if isinstance(exc, (smtplib.SMTPAuthenticationError, smtplib.SMTPNotSupportedError)):
        return ConfigurationError(f"{type(exc).__name__}: {exc}")
    if isinstance(exc, smtplib.SMTPResponseException):
        if exc.smtp_code >= 500 and isinstance(exc, smtplib.SMTPSenderRefused):
            return ConfigurationError(f"SMTP sender refused: {exc.smtp_code} {exc.smtp_error!r}")
        if exc.smtp_code >= 500:
            return RecipientsRefused(f"SMTP {exc.smtp_code} {exc.smtp_error!r}", set())
        return TransientError(f"SMTP {exc.smtp_code} {exc.smtp_error!r}")
    if isinstance(exc, (smtplib.SMTPException, OSError, socket.timeout, ConnectionError, TimeoutError)):
        return TransientError(f"{type(exc).__name__}: {exc}")
    if isinstance(exc, (redis.RedisError,) + DATABASE_ERRORS):
        return TransientError(f"{type(exc).__name__}: {exc}")
    return None
