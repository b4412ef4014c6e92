"""The provider calls. One `Outbox` per chunk holds one open connection of the configured
backend; `send()` delivers one rendered digest to a slice of its recipients and says, per
delivery, what happened.

Batch providers (Mailgun, SendGrid, Postmark: newsletter/email_providers) get one call per
slice: the digest with the provider's merge fields, each recipient's values as merge data and
their List-Unsubscribe as a merge header. Before each such call the content is searched for merge keys in any provider's
syntax: a key the templates did not insert (a forged copy of one of ours counts too) would be
filled with each reader's own values wherever it sits, so the call is refused
(MergeKeysRefused) and nothing is sent.

Every other backend gets one message per recipient. For backends that serialise the
MIME message themselves (SMTP, console, file) the message is built once per digest with
placeholders and each recipient's copy is made by splicing their values into those bytes;
if the encoding ever hid a placeholder (a long line forcing quoted-printable), each message is
built the ordinary way instead.
"""

import re
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache

from anymail.backends.base import AnymailBaseBackend
from anymail.message import AnymailMessage
from django.conf import settings
from django.core.mail import EmailMessage, EmailMultiAlternatives, get_connection
from django.core.mail.message import make_msgid
from django.core.mail.utils import DNS_NAME

from newsletter.app_settings import app_settings
from newsletter.scraped import merge_tags

from . import providers
from .links import LinkMaker, Recipient, static_headers
from .rendering import RenderedDigest, field as merge_field, split_fields
from .providers import RecipientsRefused

_HEADER_SAFE = re.compile(r"^[\x21-\x7e ]*$")
# Addresses that can be spliced into a header as they are (others take the ordinary path).
_PLAIN_ADDRESS = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9.-]+$")


@dataclass
class Outcome:
    """What one call did, by delivery id."""

    sent: dict[int, str] = field(default_factory=dict)  # -> provider message id
    refused: dict[int, str] = field(default_factory=dict)  # provider named the recipient: suppress
    failed: dict[int, str] = field(default_factory=dict)  # this message failed, reason unknown

    def merge(self, other: "Outcome") -> None:
        self.sent.update(other.sent)
        self.refused.update(other.refused)
        self.failed.update(other.failed)


class SendAborted(Exception):
    """A transient or configuration error stopped a call; `done` is what was settled before."""

    def __init__(self, error: providers.SendError, done: Outcome):
        super().__init__(str(error))
        self.error = error
        self.done = done


class MergeKeysRefused(Exception):
    """The content of a batch call holds merge keys the templates did not put there; nothing
    was sent. `unexpected`: each such key (lower-case) and how many times it is there."""

    def __init__(self, unexpected: dict[str, int]):
        super().__init__("merge keys the templates did not put there: " + ", ".join(sorted(unexpected)))
        self.unexpected = unexpected


@lru_cache(maxsize=64)
def _provider_content(digest: RenderedDigest, field_format: str) -> tuple[str, str]:
    return digest.html.with_fields(field_format), digest.text.with_fields(field_format)


@lru_cache(maxsize=64)
def _unexpected_merge_keys(digest: RenderedDigest, field_format: str, headers: tuple) -> tuple[tuple[str, int], ...]:
    """Merge keys in the digest as a provider gets it (subject, both bodies, headers) beyond
    those the templates inserted, counted: so a forged copy of one of ours shows too."""
    html, text = _provider_content(digest, field_format)
    found = merge_tags(digest.subject) + merge_tags(html) + merge_tags(text) + merge_tags("\n".join(headers))
    inserted = Counter()  # what the provider's tag pattern finds in the fields we wrote
    for name in (*digest.html.parts[1::2], *digest.text.parts[1::2]):
        inserted += merge_tags(field_format.format(name))
    return tuple(sorted((found - inserted).items()))


class Outbox:
    def __init__(self, connection=None):
        self.connection = connection or get_connection(
            providers.digest_backend(settings.EMAIL_BACKEND), timeout=app_settings.DIGEST_SEND_TIMEOUT
        )
        self.capability = providers.capability_of(self.connection)
        self.links = LinkMaker()
        self.from_email = settings.DEFAULT_FROM_EMAIL
        self.headers = static_headers()
        self._prebuilt = {}

    @property
    def slice_size(self) -> int:
        """Recipients per call; for one-by-one sending, messages between two records."""
        if self.capability.batch:
            return max(1, min(settings.DIGEST_BATCH_SIZE, self.capability.batch_size))
        return max(1, min(settings.DIGEST_BATCH_SIZE, 100))

    def __enter__(self):
        self.connection.open()
        return self

    def __exit__(self, *exc):
        self.connection.close()

    def send(self, digest: RenderedDigest, recipients: list[Recipient]) -> Outcome:
        values = [(r, self.links.merge_values(r, digest.paper_ids)) for r in recipients]
        if self.capability.batch:
            return self._send_batch(digest, values)
        return self._send_each(digest, values)

    # --- batch providers ---------------------------------------------------------------

    def _send_batch(self, digest, values) -> Outcome:
        outcome = Outcome()
        try:
            outcome.merge(self._batch_call(digest, values))
        except RecipientsRefused as refusal:
            named = refusal.addresses
            for recipient, _ in values:
                if recipient.email.lower() in named:
                    outcome.refused[recipient.delivery_id] = str(refusal)[:1000]
            rest = [(r, v) for r, v in values if r.email.lower() not in named]
            if named and rest:
                # The call was refused as a whole; the others go again without the named ones.
                outcome.merge(self._send_batch(digest, rest))
            elif not named and len(rest) == 1:
                outcome.failed[rest[0][0].delivery_id] = str(refusal)[:1000]
            elif not named:
                # The provider did not say who: halve until the culprits are alone.
                middle = len(rest) // 2
                for part in (rest[:middle], rest[middle:]):
                    try:
                        outcome.merge(self._send_batch(digest, part))
                    except SendAborted as aborted:
                        outcome.merge(aborted.done)
                        raise SendAborted(aborted.error, outcome) from aborted
        return outcome

    def _check_merge_keys(self, digest, values) -> None:
        """Raise MergeKeysRefused if the content, or a recipient's own values (SendGrid fills
        keys inside filled-in values too), holds a merge key the templates did not insert."""
        unexpected = Counter(dict(_unexpected_merge_keys(digest, self.capability.merge_field, tuple(self.headers.values()))))
        own_values = "\n".join(v for _, merge_values in values for v in [*merge_values.values(), *LinkMaker.headers(merge_values).values()])
        unexpected.update(merge_tags(own_values))
        if unexpected:
            raise MergeKeysRefused(dict(unexpected))

    def _batch_call(self, digest, values) -> Outcome:
        self._check_merge_keys(digest, values)
        html, text = _provider_content(digest, self.capability.merge_field)
        message = AnymailMessage(
            subject=digest.subject,
            body=text,
            from_email=self.from_email,
            to=[r.email for r, _ in values],
            headers=self.headers,
            connection=self.connection,
        )
        message.attach_alternative(html, "text/html")
        message.merge_data = {r.email: v for r, v in values}
        message.merge_headers = {r.email: LinkMaker.headers(v) for r, v in values}
        try:
            message.send()
        except Exception as exc:
            error = self.capability.classify_error(exc, message.to)
            if error is None:
                raise
            if isinstance(error, RecipientsRefused):
                raise error from exc
            raise SendAborted(error, Outcome()) from exc
        return self._read_status(message, values)

    @staticmethod
    def _read_status(message, values) -> Outcome:
        outcome = Outcome()
        statuses = message.anymail_status.recipients
        lowered = {email.lower(): status for email, status in statuses.items()}
        for recipient, _ in values:
            status = statuses.get(recipient.email) or lowered.get(recipient.email.lower())
            state = status.status if status else "unknown"
            if state in ("rejected", "invalid"):
                outcome.refused[recipient.delivery_id] = f"provider status {state}"
            elif state == "failed":
                outcome.failed[recipient.delivery_id] = "provider status failed"
            else:
                outcome.sent[recipient.delivery_id] = (status.message_id if status else "") or ""
        return outcome

    # --- one message per recipient ------------------------------------------------------

    def _send_each(self, digest, values) -> Outcome:
        outcome = Outcome()
        for recipient, merge_values in values:
            message, message_id = self._single_message(digest, recipient, merge_values)
            try:
                self.connection.send_messages([message])
            except Exception as exc:
                error = self.capability.classify_error(exc, [recipient.email])
                if error is None:
                    raise
                if isinstance(error, RecipientsRefused):
                    target = outcome.refused if error.addresses else outcome.failed
                    target[recipient.delivery_id] = str(error)[:1000]
                    continue
                raise SendAborted(error, outcome) from exc
            status = getattr(message, "anymail_status", None)
            outcome.sent[recipient.delivery_id] = (status.message_id if status and status.message_id else message_id) or ""
        return outcome

    def _single_message(self, digest, recipient, merge_values):
        headers = {**self.headers, **LinkMaker.headers(merge_values)}
        prebuilt = None if isinstance(self.connection, AnymailBaseBackend) else self._prebuilt_for(digest)
        if prebuilt and _PLAIN_ADDRESS.match(recipient.email) and all(_HEADER_SAFE.match(v) for v in headers.values()):
            message_id = make_msgid(domain=DNS_NAME)
            raw = prebuilt.splice(
                {**merge_values, "to_address": recipient.email, "list_unsubscribe": headers["List-Unsubscribe"], "message_id": message_id}
            )
            return PrebuiltEmailMessage(raw, self.from_email, [recipient.email]), message_id
        html, text = digest.for_recipient(merge_values)
        message_id = make_msgid(domain=DNS_NAME)
        message = EmailMultiAlternatives(
            subject=digest.subject,
            body=text,
            from_email=self.from_email,
            to=[recipient.email],
            headers={**headers, "Message-ID": message_id},
            connection=self.connection,
        )
        message.attach_alternative(html, "text/html")
        return message, message_id

    def _prebuilt_for(self, digest):
        key = id(digest)
        entry = self._prebuilt.get(key)
        if entry is None or entry[0] is not digest:
            entry = self._prebuilt[key] = (digest, PrebuiltMime.build(digest, self.from_email, self.headers))
            if len(self._prebuilt) > 64:
                self._prebuilt.pop(next(iter(self._prebuilt)))
        return entry[1]


# --- prebuilt MIME ------------------------------------------------------------------------

_PLACEHOLDER_TO = "merge-to-address@merge.invalid"


class PrebuiltMime:
    """A digest's whole MIME message, serialised once, cut at the per-recipient values."""

    def __init__(self, parts: list[bytes]):
        self.parts = parts

    @classmethod
    def build(cls, digest: RenderedDigest, from_email: str, headers: dict) -> "PrebuiltMime | None":
        message = EmailMultiAlternatives(
            subject=digest.subject,
            body=digest.text.with_fields(merge_field("{}")),
            from_email=from_email,
            to=[_PLACEHOLDER_TO],
            headers={**headers, "List-Unsubscribe": merge_field("list_unsubscribe"), "Message-ID": merge_field("message_id")},
        )
        message.attach_alternative(digest.html.with_fields(merge_field("{}")), "text/html")
        raw = message.message().as_bytes(linesep="\r\n")
        raw = raw.replace(_PLACEHOLDER_TO.encode(), merge_field("to_address").encode())
        expected = {}
        for text in (digest.html, digest.text):
            for name in text.parts[1::2]:
                expected[name] = expected.get(name, 0) + 1
        expected.update({"list_unsubscribe": 1, "message_id": 1, "to_address": 1})
        parts = split_fields(raw)
        found = {}
        for name in parts[1::2]:
            found[name.decode()] = found.get(name.decode(), 0) + 1
        if found != expected:
            return None  # the encoding changed a placeholder: build each message normally
        return cls(parts)

    def splice(self, values: dict[str, str]) -> bytes:
        parts = self.parts[:]
        for i in range(1, len(parts), 2):
            parts[i] = values[parts[i].decode()].encode()
        return b"".join(parts)


class _RawMime:
    """Enough of email.message.Message for Django's backends: they only serialise it."""

    def __init__(self, raw: bytes):
        self.raw = raw  # CRLF line endings

    def as_bytes(self, unixfrom=False, linesep="\n", **kwargs) -> bytes:
        return self.raw if linesep == "\r\n" else self.raw.replace(b"\r\n", linesep.encode())

    def as_string(self, unixfrom=False, linesep="\n", **kwargs) -> str:
        return self.as_bytes(linesep=linesep).decode("utf-8", "surrogateescape")

    def __bytes__(self):
        return self.as_bytes()

    def get_charset(self):
        return None


class PrebuiltEmailMessage(EmailMessage):
    """An EmailMessage whose MIME form is already built."""

    def __init__(self, raw: bytes, from_email: str, to: list[str]):
        super().__init__(from_email=from_email, to=to)
        self.raw = raw

    def message(self, *args, **kwargs):
        return _RawMime(self.raw)
