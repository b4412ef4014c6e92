"""What the configured email backend can do, and what its errors mean.

Batch: providers whose API takes content we render ourselves plus per-recipient merge data and
headers for up to N recipients in one call (each recipient gets their own message). Every
other backend (SMTP, console, Anymail ESPs without inline merge data) sends one message per
recipient over one connection.

Errors fall in three kinds: transient (retry later: connection errors, time-outs, 429, 5xx),
recipients refused (permanent for those recipients; the others go on) and configuration errors
(our settings or account are wrong: stop and tell the admins, lose nothing).
"""

import email.utils
import re
import smtplib
import socket
from dataclasses import dataclass, field
from datetime import datetime, timezone

import redis
from anymail.exceptions import AnymailAPIError, AnymailError, AnymailRecipientsRefused, AnymailRequestsAPIError
from django.db import InterfaceError, OperationalError


@dataclass(frozen=True)
class Capability:
    name: str
    batch_size: int = 1  # recipients per provider call; 1 = one message each
    field_format: str = ""  # how the provider writes a merge field in inline content
    esp_extra: dict = field(default_factory=dict)

    @property
    def batch(self) -> bool:
        return self.batch_size > 1


# Mailgun: recipient-variables, max 1,000 recipients per call. SendGrid: personalizations
# with legacy substitutions, max 1,000 per call. Both substitute in inline html/text/headers.
_BATCH = {
    "anymail.backends.mailgun.EmailBackend": Capability("mailgun", 1000, "%recipient.{}%"),
    "newsletter.digests.mailgun.EmailBackend": Capability("mailgun", 1000, "%recipient.{}%"),
    "anymail.backends.sendgrid.EmailBackend": Capability(
        "sendgrid", 1000, "%recipient.{}%", {"merge_field_format": "%recipient.{}%"}
    ),
}


# Backends used for digests in place of the configured one (same provider, same settings).
_DIGEST_BACKENDS = {"anymail.backends.mailgun.EmailBackend": "newsletter.digests.mailgun.EmailBackend"}


def digest_backend(configured: str) -> str:
    return _DIGEST_BACKENDS.get(configured, configured)


def capability_of(connection) -> Capability:
    cls = type(connection)
    path = f"{cls.__module__}.{cls.__qualname__}"
    return _BATCH.get(path, Capability(path.rsplit(".", 2)[-2] if "." in path else path))


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
_ADDRESS_RE = re.compile(r"[^\s<>\"',;:()\[\]]+@[^\s<>\"',;:()\[\]]+")


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


def classify_provider_error(exc: Exception, recipients: list[str]) -> SendError | None:
    """Map an exception from an Anymail send to one of the kinds above."""
    if isinstance(exc, AnymailRecipientsRefused):
        return RecipientsRefused(str(exc), {r.lower() for r in recipients})
    if isinstance(exc, AnymailRequestsAPIError):
        status = exc.status_code
        response = exc.response
        if status is None:  # connection error or time-out (the call may have been accepted)
            return TransientError(f"{type(exc.__cause__ or exc).__name__}: {exc.__cause__ or exc}")
        if status == 429 or status == 408 or status >= 500:
            retry_after = retry_after_seconds(response.headers.get("Retry-After")) if response is not None else None
            return TransientError(f"HTTP {status}", retry_after)
        if status in (400, 422):
            text = response.text if response is not None else str(exc)
            wanted = {r.lower() for r in recipients}
            named = {a.lower().rstrip(".") for a in _ADDRESS_RE.findall(text)} & wanted
            return RecipientsRefused(f"HTTP {status}: {text[:500]}", named)
        return ConfigurationError(f"HTTP {status}: {(response.text if response is not None else str(exc))[:500]}")
    if isinstance(exc, AnymailAPIError):
        status = getattr(exc, "status_code", None)
        if status is None or status == 429 or status >= 500:
            return TransientError(str(exc)[:500])
        return ConfigurationError(str(exc)[:500])
    if isinstance(exc, AnymailError):
        return ConfigurationError(str(exc)[:500])
    return classify_smtp_error(exc, recipients)


def classify_smtp_error(exc: Exception, recipients: list[str]) -> SendError | None:
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
    return None  # not a sending error: a bug, let it raise
