"""What digest sending needs to know about a provider, kept on the provider's backend class.

A batch provider's digest backend is a thin subclass of Anymail's backend for that ESP with
`DigestBackend` mixed in (mailgun.py, sendgrid.py, postmark.py). Its class attributes say what
the provider can do; its class methods read the provider's answers:

    batch_size       recipients per API call, each getting their own message (1: no batch)
    max_call_bytes   about how much one API call may carry, well under the provider's limit
                     (a worker holds a call two or three times over while it builds and
                     sends it): calls of different digests per reader are cut to fit
    max_recipient_values_bytes
                     a cap on one recipient's merge values, if the provider has one
    merge_field      how a merge field is written in inline content, e.g. "%recipient.{}%"
    merge_syntaxes   every merge tag the provider (or our backend) would fill in, so that
                     scraped text can be made inert and content checked before each call
    classify_error   an exception from a send, as one of the kinds in errors.py
    read_refusal     (the provider-specific part of it) a 400/422 answer: who was refused?
    is_soft_bounce   whether a bounce event means "try again later"

Every other backend (SMTP, the console, an Anymail ESP without a module here) is read with the
defaults below, through a bare `DigestBackend()`: one message per recipient, Anymail's errors
read the generic way, only "deferred" events are soft bounces.
"""

import re
from typing import NamedTuple

from anymail.backends.base import BasePayload
from anymail.exceptions import AnymailAPIError, AnymailError, AnymailRecipientsRefused, AnymailRequestsAPIError
from anymail.signals import EventType
from anymail.utils import EmailAddress, parse_address_list

from .errors import ConfigurationError, RecipientsRefused, SendError, TransientError, classify_smtp_error, retry_after_seconds


class MergeSyntax(NamedTuple):
    """A family of merge tags, as two regular expressions (matched ignoring case).

    `opener`: where a tag begins; a zero-width space after it leaves no tag for the provider.
    `tag`: a whole tag, to count them. Either may hold OUR_FIELDS, which stands for our own
    merge field names (for a syntax that only our keys make dangerous)."""

    opener: str
    tag: str


OUR_FIELDS = "<our fields>"

# %name% tags: Mailgun's %recipient.KEY% and its own %unsubscribe_url%...; our SendGrid keys.
PERCENT_TAGS = MergeSyntax(r"%(?=[a-z_])", r"%[a-z_][^%\s]*%")
# {{ ... }}: Handlebars (SendGrid dynamic templates), Mustachio (Postmark) and most others.
DOUBLE_BRACES = MergeSyntax(r"\{(?=\{)", r"\{\{")

_ADDRESS_RE = re.compile(r"[^\s<>\"',;:()\[\]]+@[^\s<>\"',;:()\[\]]+")
# A bare ASCII address whose parts need no quoting (RFC 5322 dot-atom @ a dotted host name):
# the email package would parse it into exactly these two halves.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_BARE_ADDRESS = re.compile(rf"({_ATOM}(?:\.{_ATOM})*)@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)")


class BareRecipients:
    """Mix into an Anymail payload (before it). A batch call's `to` is up to a thousand bare
    addresses, which Anymail parses one by one with the email package (about as much CPU as
    the rest of the call's building). When every one is a bare address, each becomes the
    EmailAddress the parse would give, from its two halves; otherwise Anymail parses them."""

    base_message_attrs = tuple(
        (attr, combiner, "parse_recipients" if attr == "to" else converter)
        for attr, combiner, converter in BasePayload.base_message_attrs
    )

    def parse_recipients(self, addresses):
        halves = [_BARE_ADDRESS.fullmatch(a) if isinstance(a, str) else None for a in addresses]
        if all(halves):
            return [EmailAddress(username=m[1], domain=m[2]) for m in halves]
        return parse_address_list(addresses, field="to")


class DigestBackend:
    """Mix into an Anymail backend (before it); the defaults are those of one-by-one sending."""

    provider = ""  # the EMAIL_PROVIDER value (and registry key) this backend serves
    batch_size = 1
    max_call_bytes: int | None = None
    max_recipient_values_bytes: int | None = None
    merge_field = ""
    merge_syntaxes: tuple[MergeSyntax, ...] = ()
    # Bounce types (in the event's `bounce_type_field`) that mean "not now" rather than "never".
    bounce_type_field = ""
    soft_bounce_types: frozenset[str] = frozenset()

    @property
    def batch(self) -> bool:
        return self.batch_size > 1

    # --- reading a refusal ------------------------------------------------------------------

    @classmethod
    def classify_error(cls, exc: Exception, recipients: list[str]) -> SendError | None:
        """`exc` from a send to `recipients` as a kind of errors.py; None: not a sending error
        (a bug, let it raise)."""
        if isinstance(exc, AnymailRecipientsRefused):  # every recipient rejected or invalid
            return RecipientsRefused(str(exc), {r.lower() for r in recipients})
        if isinstance(exc, AnymailRequestsAPIError):
            status, response = exc.status_code, exc.response
            if status is None:  # connection error or time-out (the call may have been accepted)
                return TransientError(f"{type(exc.__cause__ or exc).__name__}: {exc.__cause__ or exc}")
            if status in (408, 429) or status >= 500:
                retry_after = retry_after_seconds(response.headers.get("Retry-After")) if response is not None else None
                return TransientError(f"HTTP {status}", retry_after)
            text = response.text if response is not None else str(exc)
            if status in (400, 422):
                return cls.read_refusal(status, text, recipients)
            return ConfigurationError(f"HTTP {status}: {text[:500]}")
        if isinstance(exc, AnymailAPIError):
            status = getattr(exc, "status_code", None)
            if status is None or status == 429 or status >= 500:
                return TransientError(str(exc)[:500])
            return ConfigurationError(str(exc)[:500])
        if isinstance(exc, AnymailError):
            return ConfigurationError(str(exc)[:500])
        return classify_smtp_error(exc, recipients)

    @classmethod
    def read_refusal(cls, status: int, text: str, recipients: list[str]) -> SendError:
        """A 400 or 422 answer to a send. By default: the recipients whose addresses it quotes
        are refused; if it quotes none, the caller narrows the culprits down by halving."""
        wanted = {r.lower() for r in recipients}
        named = {a.lower().rstrip(".") for a in _ADDRESS_RE.findall(text)} & wanted
        return RecipientsRefused(f"HTTP {status}: {text[:500]}", named)

    # --- reading a tracking event ---------------------------------------------------------

    @classmethod
    def is_soft_bounce(cls, event) -> bool:
        """For a bounced or deferred Anymail tracking event: may the mailbox work tomorrow?"""
        if event.event_type == EventType.DEFERRED:
            return True
        raw = event.esp_event if isinstance(event.esp_event, dict) else {}
        return bool(cls.bounce_type_field) and raw.get(cls.bounce_type_field) in cls.soft_bounce_types
