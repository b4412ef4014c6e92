"""Postmark: batch sends of up to 500 messages per call (/email/batch), one per recipient,
each with its own headers; this backend fills each recipient's merge fields in.

Postmark merges data only into its stored templates (and its Bulk API, which must be enabled
by Postmark's support and reports no per-recipient result); /email/batch sends what it is
given. So the digest's inline content is written with {{KEY}} fields, Postmark's own template
syntax, and each recipient's copy is filled in here, in one pass, with exactly the keys of their
merge data. Anymail writes each message's merge headers (List-Unsubscribe) and reads
Postmark's answer for each message: its MessageID, or the recipient inactive (hard bounce,
complaint, suppression) or invalid.

Digests are broadcast mail; Postmark wants them on a Broadcast message stream:
POSTMARK_DIGEST_MESSAGE_STREAM (e.g. "broadcast") sends digests there, while other mail keeps
POSTMARK_MESSAGE_STREAM (the server's default stream when unset).
"""

import json
import re

from anymail.backends import postmark
from anymail.utils import get_anymail_setting

from .base import DOUBLE_BRACES, BareRecipients, DigestBackend
from .errors import ConfigurationError, SendError

# Postmark's error codes for refused recipients (https://postmarkapp.com/developer/api/overview#error-codes).
_INACTIVE_RECIPIENT = 406
_INVALID_REQUEST = 300
_RECIPIENT_FIELD_ERROR = re.compile(r"^(Invalid|Error\s+parsing)\s+'(To|Cc|Bcc)'", re.IGNORECASE)


class PostmarkPayload(BareRecipients, postmark.PostmarkPayload):
    def _uses_template(self) -> bool:
        return "TemplateId" in self.data or "TemplateAlias" in self.data

    def get_api_endpoint(self):
        if self.merge_data and not self._uses_template() and not self.backend.use_bulk_api:
            return "email/batch"  # Anymail refuses merge data without a template; we fill it in
        return super().get_api_endpoint()

    def data_for_recipient(self, to):
        data = super().data_for_recipient(to)
        if not self._uses_template():
            values = data.pop("TemplateModel", None) or {}  # Postmark ignores it outside templates
            for part in ("Subject", "HtmlBody", "TextBody"):
                if data.get(part) and values:
                    data[part] = self.backend.fill_merge_fields(data[part], values)
        return data


class EmailBackend(DigestBackend, postmark.EmailBackend):
    provider = "postmark"
    # Postmark: at most 500 messages and 50 MB per /email/batch call. Each message carries the
    # whole digest (~47 KB of HTML and text today: ~23 MB per call); a shared digest past
    # ~95 KB would need a smaller DIGEST_BATCH_SIZE. Personal batches are cut by bytes.
    batch_size = 500
    max_call_bytes = 10_000_000
    merge_field = "{{{{{}}}}}"  # {{KEY}}
    merge_syntaxes = (DOUBLE_BRACES,)
    bounce_type_field = "Type"
    soft_bounce_types = frozenset({"SoftBounce", "Transient", "DnsError"})

    def __init__(self, **kwargs):
        stream = get_anymail_setting("digest_message_stream", esp_name=self.esp_name, kwargs=kwargs, default=None)
        if stream:
            kwargs.setdefault("message_stream", stream)
        super().__init__(**kwargs)

    def build_message_payload(self, message, defaults):
        return PostmarkPayload(message, defaults, self)

    def fill_merge_fields(self, text: str, values: dict) -> str:
        """`text` with each {{KEY}} of `values` replaced by its value: in one pass, so a value
        that holds a field is never filled in again."""
        fields = {self.merge_field.format(key): str(value) for key, value in values.items()}
        pattern = re.compile("|".join(re.escape(field) for field in sorted(fields, key=len, reverse=True)))
        return pattern.sub(lambda match: fields[match.group(0)], text)

    @classmethod
    def read_refusal(cls, status: int, text: str, recipients: list[str]) -> SendError:
        """A 422 names its cause in ErrorCode: only an inactive or invalid recipient is the
        recipient's doing; every other code (sender signature, account, JSON...) is ours."""
        try:
            answer = json.loads(text)
            code, message = int(answer.get("ErrorCode")), str(answer.get("Message") or "")
        except (ValueError, TypeError, AttributeError):
            return super().read_refusal(status, text, recipients)
        if code == _INACTIVE_RECIPIENT or (code == _INVALID_REQUEST and _RECIPIENT_FIELD_ERROR.match(message)):
            return super().read_refusal(status, text, recipients)
        return ConfigurationError(f"HTTP {status}, Postmark error {code}: {message[:500]}")
