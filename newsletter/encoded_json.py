"""Strings that carry their own JSON encoding, and a json.dumps that splices them in.

A batch call of different digests carries each reader's papers as merge values: some 40 KB of
JSON per reader, nearly all of it the same cached paper blocks joined with a few tokens between
(newsletter/digests/rendering.py). json.dumps escaped all of it again for every reader, about
a fifth of a unique digest's CPU. So the blocks' text is escaped once, when a block is made,
and a reader's value is spliced from those escaped pieces: an `EncodedStr`, a str that knows
its own json.dumps. `dumps` writes what json.dumps writes, character for character, for the
shapes a provider call has (dicts of str, nested), copying an EncodedStr's encoding instead of
escaping it; for anything else it says None (the caller uses json.dumps then).

Why splicing is exact: json.dumps (ensure_ascii, the default) escapes a string one character
(code point) at a time, whatever comes before or after, so the encoding of a + b is the
encoding of a followed by that of b, less the quotes between. tests/test_encoded_json.py
compares the two.
"""

import re
from json.encoder import encode_basestring_ascii  # what json.dumps escapes strings with

# What JSON writes as it is: printable ASCII but the quote and the backslash.
_PLAIN = re.compile(r'[ !#-\[\]-~]*')


class EncodedStr(str):
    """A str and its JSON encoding (`json`: json.dumps of the str, quotes included)."""

    json: str

    def __new__(cls, text: str, encoded: str):
        self = super().__new__(cls, text)
        self.json = encoded
        return self


def escaped(text: str) -> str:
    """`text` as it is inside a JSON string (json.dumps without the quotes)."""
    return encode_basestring_ascii(text)[1:-1]


def is_plain(text: str) -> bool:
    """Whether JSON writes `text` as it is (then it is its own escaped form)."""
    return _PLAIN.fullmatch(text) is not None


class _NotHandled(Exception):
    pass


def dumps(data) -> str | None:
    """json.dumps(data) (default arguments), EncodedStr values copied rather than escaped;
    None if `data` holds anything but dicts with str keys and str values."""
    out: list[str] = []
    try:
        _encode(data, out)
    except _NotHandled:
        return None
    return "".join(out)


def _encode(value, out: list[str]) -> None:
    kind = type(value)
    if kind is EncodedStr:
        out.append(value.json)
    elif isinstance(value, str):  # SafeString too: json.dumps writes any str's characters
        out.append(encode_basestring_ascii(value))
    elif kind is dict:
        if not value:
            out.append("{}")
            return
        separator = "{"
        for key, item in value.items():
            if not isinstance(key, str):
                raise _NotHandled  # json.dumps converts such keys: let it
            out.append(separator)
            out.append(encode_basestring_ascii(key))
            out.append(": ")
            _encode(item, out)
            separator = ", "
        out.append("}")
    else:
        raise _NotHandled
