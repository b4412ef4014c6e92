"""The provider calls. One `Outbox` per chunk holds one open connection of the configured
backend; `send()` delivers one rendered digest to a slice of its recipients, `send_personal()`
a personal shell to a slice of readers each with their own papers (rendering.PaperSection),
and both say, per delivery, what happened.

Batch providers (Mailgun, SendGrid, Postmark: newsletter/email_providers) get one call per
slice: the digest with the provider's merge fields, each recipient's values as merge data and
their List-Unsubscribe as a merge header. A personal slice is the same call, its papers,
subject, preheader and count being merge values too: one call carries as many different
digests as the provider takes, by count and by bytes (`personal_slices`). Before each call the
content is searched for merge keys in any provider's syntax: a key the templates did not insert
(a forged copy of one of ours counts too) would be filled with each reader's own values
wherever it sits, so the call is refused (MergeKeysRefused, naming the recipients whose own
values hold one when the shared content does not) and nothing is sent. A reader's papers are
searched once per process, block by block (rendering.PaperBlock), not per recipient.

Every other backend gets one message per recipient. For backends that serialise the
MIME message themselves (SMTP, console, file) the message is built once per digest (or per
personal shell) with placeholders and each recipient's copy is made by splicing their values
into those bytes; if the encoding ever hid a placeholder (a long line forcing
quoted-printable), or a personal copy would have a line too long for 8bit, that message is
built the ordinary way instead.
"""

import re
from collections import Counter
from dataclasses import dataclass, field
from email.header import Header
from functools import lru_cache

from anymail.backends.base import AnymailBaseBackend
from anymail.message import AnymailMessage
from django.conf import settings
from django.core.mail import EmailMessage, EmailMultiAlternatives, get_connection
from django.core.mail.backends.smtp import EmailBackend as SmtpBackend
from django.core.mail.message import BadHeaderError, make_msgid, sanitize_address
from django.core.mail.utils import DNS_NAME

from newsletter.app_settings import app_settings
from newsletter.scraped import merge_tags

from . import providers
from .links import LinkMaker, Recipient, static_headers
from .providers import RecipientsRefused
from .rendering import PERSONAL_FIELDS, MergeText, PaperSection, RenderedDigest, feedback_field, field as merge_field, split_fields

_HEADER_SAFE = re.compile(r"^[\x21-\x7e ]*$")
# Addresses that can be spliced into a header as they are (others take the ordinary path).
_PLAIN_ADDRESS = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9.-]+$")
# RFC 5322: a line is at most 998 octets (an 8bit body may not be re-wrapped).
MAX_LINE_OCTETS = 998
# What one recipient's links, topics, date and headers add to a call, about (as JSON).
_OWN_VALUES_CHARS = 2000


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
    """A batch call's content holds merge keys the templates did not put there; nothing was
    sent. `unexpected`: each such key (lower-case) and how many times it is there;
    `culprits`: the delivery ids whose own values hold them (None: the shared content does,
    so every recipient of the call)."""

    def __init__(self, unexpected: dict[str, int], culprits: set[int] | None = None):
        super().__init__("merge keys the templates did not put there: " + ", ".join(sorted(unexpected)))
        self.unexpected = unexpected
        self.culprits = culprits


@dataclass
class _Copy:
    """One recipient's copy in a call: their merge values, and for a personal copy their
    papers (`section`) and feedback tokens (inside its values already)."""

    recipient: Recipient
    values: dict[str, str]
    section: PaperSection | None = None
    tokens: dict[str, str] = field(default_factory=dict)


@lru_cache(maxsize=64)
def _provider_content(digest: RenderedDigest, field_format: str) -> tuple[str, str, str]:
    """(subject, html, text) with each field in the provider's syntax."""
    subject = MergeText.parse(digest.subject).with_fields(field_format)
    return subject, digest.html.with_fields(field_format), digest.text.with_fields(field_format)


@lru_cache(maxsize=64)
def _unexpected_merge_keys(digest: RenderedDigest, field_format: str, headers: tuple) -> tuple[tuple[str, int], ...]:
    """Merge keys in the digest as a provider gets it (subject, both bodies, headers) beyond
    those the templates inserted, counted: so a forged copy of one of ours shows too."""
    subject, html, text = _provider_content(digest, field_format)
    found = merge_tags(subject) + merge_tags(html) + merge_tags(text) + merge_tags("\n".join(headers))
    inserted = Counter()  # what the provider's tag pattern finds in the fields we wrote
    for name in (*MergeText.parse(digest.subject).parts[1::2], *digest.html.parts[1::2], *digest.text.parts[1::2]):
        inserted += merge_tags(field_format.format(name))
    return tuple(sorted((found - inserted).items()))


@lru_cache(maxsize=4096)
def _encoded_header(name: str, value: str) -> bytes:
    """Header `name`'s value encoded (RFC 2047 where it is not ASCII) and folded with CRLF, to
    follow "Name: " on its line: what replaces that header's placeholder in a prebuilt message.
    The first encoded word starts on the header's own line (Django's EmailMessage moves a long
    one onto a continuation line, which parsers read back with a leading space)."""
    if "\n" in value or "\r" in value:
        raise BadHeaderError(f"Header values can't contain newlines (got {value!r} for header {name!r})")
    charset = "us-ascii" if value.isascii() else "utf-8"
    return Header(value, charset, header_name=name).encode(linesep="\r\n").encode()


def subject_for(connection, subject: str) -> str:
    """`subject` as an EmailMessage sent through `connection` should carry it. A backend that
    serialises the MIME message itself (SMTP, console, file) gets a non-ASCII subject already
    as encoded words on one line: Django would encode it with its first word on a
    continuation line ("Subject:", CRLF, space), which parsers read back with a leading space;
    given ASCII, Django only folds it between the words. An Anymail backend gets the text."""
    if subject.isascii() or isinstance(connection, AnymailBaseBackend):
        return subject
    return _encoded_header("Subject", subject).decode().replace("\r\n ", " ")


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
        self._envelope_from = sanitize_address(self.from_email, settings.DEFAULT_CHARSET)

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
        copies = [_Copy(r, self.links.merge_values(r, digest.paper_ids)) for r in recipients]
        if self.capability.batch:
            return self._send_batch(digest, copies)
        return self._send_each(digest, copies)

    # --- personal batches -----------------------------------------------------------------

    def takes_personal(self, json_chars: int) -> bool:
        """Whether a reader whose papers come to `json_chars` (PaperSection.json_chars) fits in
        a personal batch: one recipient's merge values may be capped (SendGrid: 50,000 bytes
        of substitutions)."""
        limit = self.capability.max_recipient_values_bytes
        return limit is None or json_chars + _OWN_VALUES_CHARS <= limit

    def personal_slices(self, shell: RenderedDigest, sized: list) -> list[list]:
        """`sized` ([(copy, JSON chars of its papers)]) cut into calls (lists of copies) of at
        most slice_size recipients and the provider's bytes per call (each copy counted with
        the whole shell, as Postmark gets it), and at most DIGEST_PERSONAL_CALL_BYTES (memory)."""
        limit = min(filter(None, (self.capability.max_call_bytes, app_settings.DIGEST_PERSONAL_CALL_BYTES)), default=None)
        shell_chars = sum(len(part) for part in (*shell.html.parts, *shell.text.parts))
        slices, current, size = [], [], 0
        for copy, json_chars in sized:
            chars = shell_chars + json_chars + _OWN_VALUES_CHARS
            if current and (len(current) >= self.slice_size or (limit and size + chars > limit)):
                slices.append(current)
                current, size = [], 0
            current.append(copy)
            size += chars
        if current:
            slices.append(current)
        return slices

    def send_personal(self, shell: RenderedDigest, copies: list[tuple[Recipient, PaperSection]]) -> Outcome:
        """`shell` (rendering.personal_shell) to each recipient with their own papers."""
        built = []
        for recipient, section in copies:
            values = self.links.merge_values(recipient, section.paper_ids)
            tokens = {name: values.pop(name) for name in [feedback_field(pk) for pk in section.paper_ids]}
            values.update(section.values(tokens, values["date_short"]))
            built.append(_Copy(recipient, values, section, tokens))
        if self.capability.batch:
            return self._send_batch(shell, built)
        return self._send_each(shell, built)

    # --- batch providers ---------------------------------------------------------------

    def _send_batch(self, digest, copies) -> Outcome:
        outcome = Outcome()
        try:
            outcome.merge(self._batch_call(digest, copies))
        except RecipientsRefused as refusal:
            named = refusal.addresses
            for copy in copies:
                if copy.recipient.email.lower() in named:
                    outcome.refused[copy.recipient.delivery_id] = str(refusal)[:1000]
            rest = [c for c in copies if c.recipient.email.lower() not in named]
            if named and rest:
                # The call was refused as a whole; the others go again without the named ones.
                outcome.merge(self._send_batch(digest, rest))
            elif not named and len(rest) == 1:
                outcome.failed[rest[0].recipient.delivery_id] = str(refusal)[:1000]
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

    def _check_merge_keys(self, digest, copies) -> None:
        """Raise MergeKeysRefused if the content, or a recipient's own values (SendGrid fills
        keys inside filled-in values too), holds a merge key the templates did not insert."""
        shared = Counter(dict(_unexpected_merge_keys(digest, self.capability.merge_field, tuple(self.headers.values()))))
        own = self._own_merge_keys(copies)
        if not shared and not own:
            return
        culprits = None
        if not shared:
            culprits = {c.recipient.delivery_id for c in copies if self._own_merge_keys([c])}
        raise MergeKeysRefused(dict(shared + own), culprits)

    @staticmethod
    def _own_merge_keys(copies) -> Counter:
        """The merge keys in the recipients' own values. A personal copy's papers are searched
        as their blocks were (once per process, PaperSection.tags) plus its tokens, unless a
        block's edges could let a token make a tag (then as a whole)."""
        texts, found = [], Counter()
        for copy in copies:
            if copy.section is None:
                texts.extend(copy.values.values())
            else:
                texts.extend(v for k, v in copy.values.items() if k not in PERSONAL_FIELDS)
                texts.extend(copy.tokens.values())
                found.update(copy.section.tags)
                if not copy.section.inert:
                    texts.extend(copy.values[name] for name in PERSONAL_FIELDS)
            texts.extend(LinkMaker.headers(copy.values).values())
        found.update(merge_tags("\n".join(texts)))
        return found

    def _batch_call(self, digest, copies) -> Outcome:
        self._check_merge_keys(digest, copies)
        subject, html, text = _provider_content(digest, self.capability.merge_field)
        message = AnymailMessage(
            subject=subject,
            body=text,
            from_email=self.from_email,
            to=[c.recipient.email for c in copies],
            headers=self.headers,
            connection=self.connection,
        )
        message.attach_alternative(html, "text/html")
        message.merge_data = {c.recipient.email: c.values for c in copies}
        message.merge_headers = {c.recipient.email: LinkMaker.headers(c.values) for c in copies}
        try:
            message.send()
        except Exception as exc:
            error = self.capability.classify_error(exc, message.to)
            if error is None:
                raise
            if isinstance(error, RecipientsRefused):
                raise error from exc
            raise SendAborted(error, Outcome()) from exc
        return self._read_status(message, copies)

    @staticmethod
    def _read_status(message, copies) -> Outcome:
        outcome = Outcome()
        statuses = message.anymail_status.recipients
        lowered = {email.lower(): status for email, status in statuses.items()}
        for copy in copies:
            recipient = copy.recipient
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

    def _send_each(self, digest, copies) -> Outcome:
        outcome = Outcome()
        for copy in copies:
            recipient = copy.recipient
            message, message_id = self._single_message(digest, copy)
            try:
                self._deliver(message)
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

    def _deliver(self, message) -> None:
        smtp = getattr(self.connection, "connection", None) if isinstance(self.connection, SmtpBackend) else None
        if isinstance(message, PrebuiltEmailMessage) and smtp is not None:
            # What Django's SMTP backend does for it, less re-reading the addresses: the
            # prebuilt path only takes plain ones (_PLAIN_ADDRESS), and the sender is read once.
            smtp.sendmail(self._envelope_from, message.to, message.raw)
        else:
            self.connection.send_messages([message])

    def _single_message(self, digest, copy: _Copy):
        recipient, merge_values = copy.recipient, copy.values
        headers = {**self.headers, **LinkMaker.headers(merge_values)}
        prebuilt = None if isinstance(self.connection, AnymailBaseBackend) else self._prebuilt_for(digest)
        if prebuilt and _PLAIN_ADDRESS.match(recipient.email) and all(_HEADER_SAFE.match(v) for v in headers.values()):
            message_id = make_msgid(domain=DNS_NAME)
            values = {**merge_values, "to_address": recipient.email, "list_unsubscribe": headers["List-Unsubscribe"],
                      "message_id": message_id, "subject_header": _encoded_header("Subject", digest.subject_for(merge_values))}
            if copy.section is not None:
                # Their papers go into an 8bit body as they are: CRLF line ends, no line too long.
                for name in ("papers_html", "papers_text"):
                    values[name] = merge_values[name].replace("\n", "\r\n").encode()
            raw = prebuilt.splice(values)
            if copy.section is None or max(map(len, raw.split(b"\r\n"))) <= MAX_LINE_OCTETS:
                return PrebuiltEmailMessage(raw, self.from_email, [recipient.email]), message_id
        html, text = digest.for_recipient(merge_values)
        message_id = make_msgid(domain=DNS_NAME)
        message = EmailMultiAlternatives(
            subject=subject_for(self.connection, digest.subject_for(merge_values)),
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
        """None if the encoding changed a placeholder (build each message normally then). The
        subject is one placeholder, whatever fields it has: each recipient's is spliced in
        encoded (_encoded_header), as a non-ASCII subject around a field would be encoded
        with the field in it."""
        message = EmailMultiAlternatives(
            subject=merge_field("subject_header"),
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
        expected.update({"subject_header": 1, "list_unsubscribe": 1, "message_id": 1, "to_address": 1})
        parts = split_fields(raw)
        found = {}
        for name in parts[1::2]:
            found[name.decode()] = found.get(name.decode(), 0) + 1
        if found != expected:
            return None  # the encoding changed a placeholder: build each message normally
        return cls(parts)

    def splice(self, values: dict[str, str | bytes]) -> bytes:
        """The message with each placeholder replaced by its value (str: UTF-8 encoded; bytes:
        as they are, already fit for where they go)."""
        parts = self.parts[:]
        for i in range(1, len(parts), 2):
            value = values[parts[i].decode()]
            parts[i] = value if isinstance(value, bytes) else value.encode()
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
