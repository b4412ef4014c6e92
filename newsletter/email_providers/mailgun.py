"""Mailgun: batch sends of up to 1,000 recipients, each filled in from recipient-variables.

Anymail sends merge data as Mailgun's recipient-variables and writes each field as
%recipient.KEY% (merge headers as %recipient.h:Name%), in the subject too; Mailgun also fills
its own %recipient_email%, %unsubscribe_url%, ... Soft bounces arrive as "failed" events of severity
"temporary", which Anymail already reports as deferred.

The form is posted as multipart/form-data. Mailgun's send API takes the same form urlencoded or
multipart, but requests urlencodes in pure Python, one byte at a time: a digest's ~40 KB of
HTML and text cost about 4 ms per call that way, more than the rest of the call. As multipart
the values are copied, not escaped. Only the encoding differs; every field is what Anymail built.

The recipient-variables JSON is written by newsletter.encoded_json.dumps: json.dumps's very
text, but a reader's papers (rendering.PaperSection.values) are copied from their encoding
spliced from the blocks', not escaped again for each reader.
"""

from anymail.backends import mailgun

from newsletter import encoded_json

from .base import PERCENT_TAGS, BareRecipients, DigestBackend


class MailgunPayload(BareRecipients, mailgun.MailgunPayload):
    def serialize_json(self, data):
        encoded = encoded_json.dumps(data)
        return encoded if encoded is not None else super().serialize_json(data)

    def get_request_params(self, api_url):
        params = super().get_request_params(api_url)
        fields = []
        for name, value in (params.pop("data") or {}).items():
            for item in value if isinstance(value, (list, tuple)) else [value]:
                fields.append((name, (None, item)))
        params["files"] = fields + list(params.get("files") or [])
        return params


class EmailBackend(DigestBackend, mailgun.EmailBackend):
    provider = "mailgun"
    batch_size = 1000  # Mailgun: at most 1,000 recipients per call
    max_call_bytes = 10_000_000  # Mailgun: at most 25 MB per message, recipient-variables included
    merge_field = "%recipient.{}%"
    merge_syntaxes = (PERCENT_TAGS,)

    def build_message_payload(self, message, defaults):
        return MailgunPayload(message, defaults, self)
