"""Reading papers out of what the source sent.

HTML pages are read from the JSON embedded in `[data-target="DailyPapers"]`'s `data-props`
first; if that is missing or unreadable, from the server-rendered cards (`article` elements
with `h3 > a[href^="/papers/"]`). JSON API responses (a bare array of items) are read
directly. Items of all three schema generations (2024: no ai_*; 2025: ai_keywords, then
ai_summary and submittedOnDailyAt; 2026: organization, githubStars) share one shape:
`{"paper": {...}, "title", "numComments", "thumbnail" | "mediaUrl", ...}`.

Every record is validated; a bad one is skipped with a warning naming it (by position or
valid arXiv id: warnings reach the run's error and the admins' email, so they never repeat
what the source wrote). Text is stored without provider merge syntax, links only as a GitHub
repository or a plain https URL (newsletter/scraped.py). A source that yields no valid paper
raises ScrapeError. Nothing else escapes `parse()`.
"""

import json
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone

from bs4 import BeautifulSoup
from django.utils.dateparse import parse_datetime

from newsletter.scraped import github_repo_url, https_url, strip_merge_syntax

from .errors import ScrapeError

logger = logging.getLogger(__name__)

ARXIV_ID_RE = re.compile(r"^(\d{4}\.\d{4,5})(v\d{1,3})?$")
PAPER_HREF_RE = re.compile(r"^/papers/(\d{4}\.\d{4,5})(?:v\d{1,3})?/?(?:[?#].*)?$")
PUBLISHED_RE = re.compile(r"Published on ([A-Z][a-z]{2,8} \d{1,2}, \d{4})")
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
    parser: str  # "props", "cards" or "api"
    warnings: list[str] = field(default_factory=list)
    skipped: int = 0


def parse(body: bytes | str, content_type: str = "") -> ParseResult:
    """Papers from an HTML page or an API JSON body; ScrapeError if there are none."""
    if isinstance(body, bytes):
        looks_like_json = body.lstrip()[:1] in (b"[", b"{")
    else:
        looks_like_json = body.lstrip()[:1] in ("[", "{")
    if "json" in content_type.lower() or looks_like_json:
        return parse_api(body)
    return parse_html(body)


def parse_api(body: bytes | str) -> ParseResult:
    data = _load_json(body, "the API response")
    if isinstance(data, dict) and isinstance(data.get("dailyPapers"), list):
        data = data["dailyPapers"]
    if not isinstance(data, list):
        raise ScrapeError(f"the API response is a JSON {type(data).__name__}, not a list of papers")
    result = papers_from_items(data, parser="api")
    if not result.papers:
        raise ScrapeError(_nothing_found("the API response", result))
    return result


def parse_html(body: bytes | str) -> ParseResult:
    try:
        soup = BeautifulSoup(body, "lxml")
    except Exception as exc:  # lxml/bs4 refuse some byte soups outright; that is bad input.
        raise ScrapeError(f"the page is not readable HTML ({type(exc).__name__})") from exc
    warnings = []
    container = soup.select_one('[data-target="DailyPapers"][data-props]')
    if container is None:
        warnings.append('the page has no [data-target="DailyPapers"] data-props; reading the cards')
    else:
        try:
            props = _load_json(container["data-props"], "the page's data-props")
            items = props.get("dailyPapers") if isinstance(props, dict) else None
            if not isinstance(items, list):
                raise ScrapeError("the page's data-props has no dailyPapers list")
            result = papers_from_items(items, parser="props")
            if result.papers:
                return result
            warnings.extend(result.warnings)
            warnings.append("the page's data-props held no valid paper; reading the cards")
        except ScrapeError as exc:
            warnings.append(f"{exc}; reading the cards")
    for warning in warnings:
        logger.warning("scrape: %s", warning)
    result = papers_from_cards(soup)
    result.warnings[:0] = warnings
    if not result.papers:
        raise ScrapeError(_nothing_found("the page (neither data-props nor cards)", result))
    return result


def _nothing_found(where: str, result: ParseResult) -> str:
    detail = f" ({result.skipped} invalid record(s): {'; '.join(result.warnings[:5])})" if result.skipped else ""
    return f"no valid paper in {where}{detail}"


def _load_json(text: bytes | str, what: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:  # its msg is the parser's own words, never the input
        raise ScrapeError(f"{what} is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from exc
    except (ValueError, RecursionError) as exc:  # bad UTF-8, absurd nesting
        raise ScrapeError(f"{what} is not valid JSON ({type(exc).__name__})") from exc


# --- items (API and data-props) ------------------------------------------------------


def papers_from_items(items: list, parser: str) -> ParseResult:
    result = ParseResult(papers=[], parser=parser)
    seen = set()
    for position, item in enumerate(items, start=1):
        try:
            paper = paper_from_item(item)
            if paper.arxiv_id in seen:
                raise InvalidRecord(f"{paper.arxiv_id} is listed twice")
        except InvalidRecord as exc:
            _skip(result, f"record {position}: {exc}")
            continue
        seen.add(paper.arxiv_id)
        result.papers.append(paper)
    return result


def _skip(result: ParseResult, message: str) -> None:
    logger.warning("scrape (%s): skipped %s", result.parser, message)
    result.warnings.append(message)
    result.skipped += 1


def paper_from_item(item) -> ScrapedPaper:
    if not isinstance(item, dict) or not isinstance(item.get("paper"), dict):
        raise InvalidRecord("not a paper item (no 'paper' object)")
    paper = item["paper"]
    arxiv_id = clean_arxiv_id(paper.get("id"))
    try:
        return ScrapedPaper(arxiv_id=arxiv_id, fields=_fields_from_item(item, paper))
    except InvalidRecord as exc:
        raise InvalidRecord(f"{arxiv_id}: {exc}") from exc


def _fields_from_item(item: dict, paper: dict) -> dict:
    title = clean_line(paper.get("title") or item.get("title"), MAX_TITLE)
    if not title:
        raise InvalidRecord("empty title")
    upvotes = clean_count(paper.get("upvotes"))
    if upvotes is None:
        raise InvalidRecord("no upvote count")

    published_at = clean_datetime(paper.get("publishedAt"))
    featured_at = clean_datetime(paper.get("submittedOnDailyAt"))
    if featured_at is None and "ai_keywords" not in paper:
        # The 2024 schema has no submittedOnDailyAt; there the item's own publishedAt is the
        # time it was posted to the daily page (later in 2025+, it is 4 hours *before* the paper's).
        item_time = clean_datetime(item.get("publishedAt"))
        if item_time and (published_at is None or item_time > published_at):
            featured_at = item_time

    return {
        "title": title,
        "upvotes": upvotes,
        "abstract": clean_line(paper.get("summary") or item.get("summary"), MAX_TEXT),
        "ai_summary": clean_line(paper.get("ai_summary"), MAX_TEXT),
        "ai_keywords": clean_keywords(paper.get("ai_keywords")),
        "authors": clean_authors(paper.get("authors")),
        "published_at": published_at,
        "featured_at": featured_at,
        "num_comments": clean_count(item.get("numComments")) or 0,
        "github_repo": clean_url(paper.get("githubRepo"), github_repo_url),
        "github_stars": clean_count(paper.get("githubStars")),
        "project_page": clean_url(paper.get("projectPage")),
        "thumbnail": clean_url(item.get("thumbnail") or item.get("mediaUrl")),
        "organization": clean_organization(paper.get("organization") or item.get("organization")),
    }


# --- cards (the server-rendered fallback) ----------------------------------------------


def papers_from_cards(soup: BeautifulSoup) -> ParseResult:
    result = ParseResult(papers=[], parser="cards")
    seen = set()
    for position, article in enumerate(soup.find_all("article"), start=1):
        link = article.select_one('h3 > a[href^="/papers/"]') or article.select_one('h3 a[href^="/papers/"]')
        if link is None:
            continue  # not a paper card (e.g. an announcement)
        try:
            paper = paper_from_card(article, link)
            if paper.arxiv_id in seen:
                raise InvalidRecord(f"{paper.arxiv_id} is listed twice")
        except InvalidRecord as exc:
            _skip(result, f"card {position}: {exc}")
            continue
        seen.add(paper.arxiv_id)
        result.papers.append(paper)
    return result


def paper_from_card(article, link) -> ScrapedPaper:
    match = PAPER_HREF_RE.match(str(link.get("href", "")))
    if not match:
        raise InvalidRecord("the link is not a paper link")
    arxiv_id = match.group(1)
    title = clean_line(link.get_text(" "), MAX_TITLE)
    if not title:
        raise InvalidRecord(f"{arxiv_id}: empty title")
    upvotes = _card_upvotes(article, link)
    if upvotes is None:
        raise InvalidRecord(f"{arxiv_id}: no upvote count")
    fields = {"title": title, "upvotes": upvotes}
    summary = article.find("p")
    if summary is not None and clean_line(summary.get_text(" "), MAX_TEXT):
        fields["ai_summary"] = clean_line(summary.get_text(" "), MAX_TEXT)
    published = PUBLISHED_RE.search(article.get_text(" "))
    if published:
        try:
            fields["published_at"] = datetime.strptime(published.group(1), "%b %d, %Y").replace(tzinfo=timezone.utc)
        except ValueError:
            pass
    return ScrapedPaper(arxiv_id=arxiv_id, fields=fields, fill_only=frozenset({"ai_summary", "published_at"}))


def _card_upvotes(article, link) -> int | None:
    """The card's upvote count: a leaf element holding only a number, preferring the bold one
    (class names change; `font-semibold text-orange-500` today)."""
    numbers = []
    for element in article.find_all(["div", "span", "p"]):
        if element.find(True) is not None or link in element.parents:
            continue
        text = element.get_text(strip=True)
        if text.isdecimal() and len(text) <= 8:
            numbers.append((element, int(text)))
    for element, value in numbers:
        if "font-semibold" in (element.get("class") or []):
            return value
    return numbers[-1][1] if numbers else None


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
