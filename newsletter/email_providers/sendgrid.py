"""SendGrid: batch sends of up to 1,000 personalizations, each with its own substitutions.

Anymail sends merge data as each personalization's (legacy) substitutions; SendGrid replaces
any key it is given, so ours are written %recipient.KEY% like Mailgun's. SendGrid's docs write
keys as -KEY-, and its dynamic templates use {{ ... }}: both count as merge syntax too.
Substitutions apply to the subject as well as the contents. A
"bounce" event of type "blocked" is a temporary refusal.

Anymail has dropped official support for SendGrid (anymail/django-anymail#432): its backend
warns (AnymailNotSupportedWarning) each time it is created and gets no fixes. The contract
tests (tests/providers/test_sendgrid.py) still cover it here; see the README.
"""

import json
import re

from anymail.backends import sendgrid

from .base import DOUBLE_BRACES, OUR_FIELDS, PERCENT_TAGS, DigestBackend, MergeSyntax
from .errors import RecipientsRefused, SendError

# "personalizations.3.to.0.email": the field SendGrid names when it refuses an address.
_PERSONALIZATION_FIELD = re.compile(r"^personalizations\.(\d+)\.to\b")


class EmailBackend(DigestBackend, sendgrid.EmailBackend):
    provider = "sendgrid"
    batch_size = 1000  # SendGrid: at most 1,000 personalizations per call
    max_call_bytes = 10_000_000  # SendGrid: a request of at most 30 MB
    # SendGrid: "Substitutions are limited to 50,000 bytes per personalization block". A reader
    # whose papers do not fit gets a call of their own.
    max_recipient_values_bytes = 50_000
    merge_field = "%recipient.{}%"
    merge_syntaxes = (PERCENT_TAGS, MergeSyntax(rf"-(?=(?:{OUR_FIELDS})-)", rf"-(?:{OUR_FIELDS})-"), DOUBLE_BRACES)
    bounce_type_field = "type"
    soft_bounce_types = frozenset({"blocked"})

    def __init__(self, **kwargs):
        kwargs.setdefault("merge_field_format", self.merge_field)
        super().__init__(**kwargs)

    @classmethod
    def read_refusal(cls, status: int, text: str, recipients: list[str]) -> SendError:
        """SendGrid does not quote a refused address; it names the field, and Anymail writes
        one personalization per recipient, in order."""
        try:
            errors = json.loads(text).get("errors") or []
        except (ValueError, AttributeError):
            errors = []
        named = set()
        for error in errors if isinstance(errors, list) else []:
            match = _PERSONALIZATION_FIELD.match(str((error or {}).get("field") or ""))
            if match and int(match.group(1)) < len(recipients):
                named.add(recipients[int(match.group(1))].lower())
        if named:
            return RecipientsRefused(f"HTTP {status}: {text[:500]}", named)
        return super().read_refusal(status, text, recipients)
