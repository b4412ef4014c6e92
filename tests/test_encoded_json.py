"""newsletter.encoded_json: its dumps writes json.dumps's very text, spliced encodings included."""

import json
import random

from django.utils.html import escape
from django.utils.safestring import SafeString

from newsletter.encoded_json import EncodedStr, dumps, escaped, is_plain

# Quotes, backslashes, control and line characters, Latin-1, BMP, a lone surrogate, astral.
ALPHABET = ['"', "\\", "\n", "\r", "\t", "\x00", "\x1f", "\x7f", "/", "<", "%", "·", "é", "▲", "…", "\u2028",
            "\ud800", "😀", "a", "Z", " ", "0", "-", "_"]


def random_text(rnd, longest=40) -> str:
    return "".join(rnd.choice(ALPHABET) for _ in range(rnd.randint(0, longest)))


def spliced(pieces: list[str]) -> EncodedStr:
    """What rendering does: each piece escaped on its own, the escaped pieces joined."""
    return EncodedStr("".join(pieces), '"' + "".join(escaped(p) for p in pieces) + '"')


def test_splicing_escaped_pieces_is_json_dumps_of_the_whole():
    rnd = random.Random(11)
    for _ in range(500):
        value = spliced([random_text(rnd) for _ in range(rnd.randint(0, 6))])
        assert value.json == json.dumps(str(value))
        assert json.loads(value.json) == str(value)


def test_dumps_writes_json_dumps_text_for_recipient_variables():
    rnd = random.Random(12)
    for _ in range(100):
        data = {}
        for _ in range(rnd.randint(0, 5)):
            own = {random_text(rnd, 8): random_text(rnd) for _ in range(rnd.randint(0, 6))}
            own["papers_html"] = spliced([random_text(rnd) for _ in range(rnd.randint(0, 6))])
            own["nested"] = {random_text(rnd, 5): spliced([random_text(rnd)])}
            own[SafeString(random_text(rnd, 8))] = escape(random_text(rnd))
            data[random_text(rnd, 10)] = own
        assert dumps(data) == json.dumps(data)


def test_dumps_leaves_other_shapes_to_json_dumps():
    for data in ({"n": 1}, {1: "a"}, ["a"], {"a": None}, {"a": ["b"]}, 1.5):
        assert dumps(data) is None
    assert dumps({}) == "{}" and dumps({"a": {}}) == json.dumps({"a": {}})


def test_plain_text_is_its_own_escaped_form():
    rnd = random.Random(13)
    for _ in range(1000):
        text = random_text(rnd, 6)
        assert is_plain(text) == (escaped(text) == text)
    assert is_plain("16197.11674.22:iK5PiQ2Rng6JOxjsN5Vz1nrBwjuv4K_nme7h3gVV4Dc")
