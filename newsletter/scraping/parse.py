"""What every paper source shares when it reads a response: the records it produces
(`ScrapedPaper`, `ParseResult`), the loop that skips bad records, and the cleaning and
validation every value passes. The layouts of each source live with it (newsletter/sources/).

Every record is validated; a bad one is skipped with a warning naming it (by position or
valid arXiv id: warnings reach the run's error and the admins' email, so they never repeat
what the source wrote). Text is stored without provider merge syntax, links only as a GitHub
repository or a plain https URL (newsletter/scraped.py). A source that yields no valid paper
raises ScrapeError.
"""

import json
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone

from django.utils.dateparse import parse_datetime

from newsletter.logs import EventLog
from newsletter.scraped import https_url, strip_merge_syntax

from .errors import ScrapeError

log = EventLog(__name__)

ARXIV_ID_RE = re.compile(r"^(\d{4}\.\d{4,5})(v\d{1,3})?$")
CONTROL_CHARS_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
WHITESPACE_RE = re.compile(r"\s+")

MAX_TITLE = 1000
MAX_TEXT = 50_000
MAX_COUNT = 10_000_000
MAX_AUTHORS = 5000
MAX_KEYWORDS = 200
MAX_URL = 500
MAX_ORGANIZATION = 200


class InvalidRecord(ValueError):
    """One item of the source is unusable; the others may still be fine."""


@dataclass
class ScrapedPaper:
    """One valid paper. `fields` holds only what the source told (model field names): a card
    does not list authors, so a paper read from cards leaves the stored authors alone.
    `fill_only` names fields that may only fill an empty stored value: a card's date has no
    time of day, and its blurb is the AI summary or, lacking one, the abstract's start."""

    arxiv_id: str
    fields: dict
    fill_only: frozenset = frozenset()

    @property
    def title(self) -> str:
        return self.fields["title"]

    @property
    def upvotes(self) -> int:
        return self.fields["upvotes"]

    @property
    def authors(self) -> list[str] | None:
        return self.fields.get("authors")


@dataclass
class ParseResult:
    papers: list[ScrapedPaper]
    parser: str  # which reading of the source gave the papers (Hugging Face: "props", "cards" or "api")
    warnings: list[str] = field(default_factory=list)
    skipped: int = 0


def collect(parser: str, records, read, what: str = "record") -> ParseResult:
    """Read each of `records` with `read` (a ScrapedPaper, or None for something that is no
    paper at all, e.g. an announcement), skipping invalid ones and repeated arXiv ids with a
    warning that names the record by its position."""
    result = ParseResult(papers=[], parser=parser)
    seen = set()
    for position, record in enumerate(records, start=1):
        try:
            paper = read(record)
            if paper is None:
                continue
            if paper.arxiv_id in seen:
                raise InvalidRecord(f"{paper.arxiv_id} is listed twice")
        except InvalidRecord as exc:
            skip(result, f"{what} {position}: {exc}")
            continue
        seen.add(paper.arxiv_id)
        result.papers.append(paper)
    return result


def skip(result: ParseResult, message: str) -> None:
    log("scrape.record_skipped", level=logging.WARNING, parser=result.parser, record=message)
    result.warnings.append(message)
    result.skipped += 1


def nothing_found(where: str, result: ParseResult) -> str:
    detail = f" ({result.skipped} invalid record(s): {'; '.join(result.warnings[:5])})" if result.skipped else ""
    return f"no valid paper in {where}{detail}"


def load_json(text: bytes | str, what: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:  # its msg is the parser's own words, never the input
        raise ScrapeError(f"{what} is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from exc
    except (ValueError, RecursionError) as exc:  # bad UTF-8, absurd nesting
        raise ScrapeError(f"{what} is not valid JSON ({type(exc).__name__})") from exc


# --- field cleaners ---------------------------------------------------------------------


def clean_arxiv_id(value) -> str:
    match = ARXIV_ID_RE.match(value.strip()) if isinstance(value, str) else None
    if not match:
        raise InvalidRecord("the arXiv id is not valid")
    return match.group(1)


def clean_text(value) -> str:
    """Text safe to store: no control characters, no lone surrogates (PostgreSQL refuses both)."""
    if not isinstance(value, str):
        return ""
    value = value.encode("utf-8", "replace").decode("utf-8")
    return CONTROL_CHARS_RE.sub("", value)


def clean_line(value, max_length: int) -> str:
    """Whitespace collapsed (arXiv hard-wraps titles and abstracts); over-long text refused;
    merge syntax made inert."""
    text = WHITESPACE_RE.sub(" ", clean_text(value)).strip()
    if len(text) > max_length:
        raise InvalidRecord(f"text of {len(text)} characters, more than {max_length}")
    return strip_merge_syntax(text)


def clean_count(value) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    if not 0 <= value <= MAX_COUNT:
        raise InvalidRecord(f"count {value} out of range")
    return value


def clean_datetime(value) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = parse_datetime(value.strip())
    except ValueError:
        return None
    if parsed is None:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def clean_url(value, accept=https_url) -> str:
    """The link as `accept` takes it (a plain https URL by default), "" if it does not."""
    if not isinstance(value, str) or len(value) > MAX_URL:
        return ""
    return accept(value)


def clean_authors(value) -> list[str]:
    if not isinstance(value, list):
        return []
    names = []
    for author in value[:MAX_AUTHORS]:
        name = author.get("name") if isinstance(author, dict) else author
        name = clean_line(name, MAX_TITLE) if isinstance(name, str) else ""
        if name:
            names.append(name)
    return names


def clean_keywords(value) -> list[str]:
    if not isinstance(value, list):
        return []
    keywords = []
    for keyword in value[:MAX_KEYWORDS]:
        keyword = clean_line(keyword, MAX_TITLE) if isinstance(keyword, str) else ""
        if keyword:
            keywords.append(keyword)
    return keywords


def clean_organization(value) -> str:
    if isinstance(value, dict):
        value = value.get("fullname") or value.get("name")
    text = clean_line(value, 10 * MAX_ORGANIZATION) if isinstance(value, str) else ""
    return text[:MAX_ORGANIZATION]
