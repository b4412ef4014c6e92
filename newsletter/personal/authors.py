"""Authors' names as readers follow them (no imports beyond the standard library: the models
use it when a follow is saved)."""

import re
import unicodedata


def author_key(name: str) -> str:
    """An author's name folded for matching: accents, case, punctuation and spacing ignored
    ("Jürgen  Schmidhuber" and "jurgen schmidhuber." match)."""
    text = unicodedata.normalize("NFKD", name or "")
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).casefold()
    return " ".join(re.findall(r"\w+", text))[:200]
