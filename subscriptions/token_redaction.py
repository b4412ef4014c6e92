"""Blank subscribers' signed tokens (see tokens.py) out of text bound for a log.

A link's token is "<id>.<payload>:<timestamp>:<signature>", a vote's (newsletter/feedback)
"<id>.<delivery>.<paper>:<signature>"; a log line holding one hands out
a working link to whoever reads the log. Only the id is kept, so a line still tells whose
link was used. Nothing here imports Django: gunicorn's config loads it before the app."""

import logging
import re

# "<id>." and then the signed value "<payload>:<timestamp>:<signature>": URL-safe base64
# pieces (a compressed payload starts with one more dot), with the dots and colons possibly
# percent-encoded by a client. The signature is 43 characters for HMAC-SHA256; the floor of 20
# is more than an IP address, a port or a clock time has. The pieces and the separators match
# disjoint characters, so the cost stays linear whatever a client puts in a URL or header.
_SEP = r"(?::|%3[Aa])"
_DOT = r"(?:\.|%2[Ee])"
_CHAR = r"(?:[\w-]|%(?!3[Aa]|2[Ee])[0-9A-Fa-f]{2})"
_TOKEN = re.compile(
    rf"(?<![\w.%-])(\d{{1,18}}){_DOT}(?:{_DOT}?{_CHAR}*{_SEP}{_CHAR}+|\d{{1,18}}{_DOT}\d{{1,18}}){_SEP}{_CHAR}{{20,}}"
)
REDACTED = "[redacted]"


def redact_tokens(text: str) -> str:
    return _TOKEN.sub(rf"\1.{REDACTED}", text)


class RedactTokens(logging.Filter):
    """A logging filter that blanks tokens in the formatted message (path, request line,
    Referer, whatever the format puts in)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact_tokens(message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True
