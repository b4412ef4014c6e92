"""Hugging Face's papers pages: the trending page, the daily pages and the daily papers API.

HTML pages are read from the JSON embedded in `[data-target="DailyPapers"]`'s `data-props`
first; if that is missing or unreadable, from the server-rendered cards (`article` elements
with `h3 > a[href^="/papers/"]`). JSON API responses (a bare array of items) are read
directly. Items of all three schema generations (2024: no ai_*; 2025: ai_keywords, then
ai_summary and submittedOnDailyAt; 2026: organization, githubStars) share one shape:
`{"paper": {...}, "title", "numComments", "thumbnail" | "mediaUrl", ...}`.

Every value goes through the shared cleaners (newsletter/scraping/parse.py): a bad record is
skipped with a warning naming it by position or valid arXiv id, never by what it said.
"""

import re
from datetime import datetime, timezone
from urllib.parse import quote, urlsplit

from bs4 import BeautifulSoup

from newsletter.logs import EventLog
from newsletter.scraped import github_repo_url
from newsletter.scraping.errors import ScrapeError
from newsletter.scraping.parse import (
    MAX_TEXT,
    MAX_TITLE,
    InvalidRecord,
    ParseResult,
    ScrapedPaper,
    clean_arxiv_id,
    clean_authors,
    clean_count,
    clean_datetime,
    clean_keywords,
    clean_line,
    clean_organization,
    clean_url,
    collect,
    load_json,
    nothing_found,
)

from .base import Source

log = EventLog(__name__)

PAPER_HREF_RE = re.compile(r"^/papers/(\d{4}\.\d{4,5})(?:v\d{1,3})?/?(?:[?#].*)?$")
PUBLISHED_RE = re.compile(r"Published on ([A-Z][a-z]{2,8} \d{1,2}, \d{4})")


class HuggingFace(Source):
    name = "huggingface"
    label = "Hugging Face"
    kinds = {"trending": "Trending page", "daily": "Daily page", "api": "Daily papers API"}

    def kind_of(self, url: str) -> str | None:
        # By path alone, so a mirror or a local stand-in (tests, chaos) reads the same; any
        # other page is taken for the trending one. A source with hosts of its own goes
        # before this one in PAPER_SOURCES.
        path = urlsplit(url).path.rstrip("/")
        if path.startswith("/api/"):
            return "api"
        if path == "/papers" or path.startswith("/papers/date/"):
            return "daily"
        return "trending"

    def parse(self, body: bytes | str, content_type: str = "") -> ParseResult:
        return parse(body, content_type)

    def paper_url(self, arxiv_id: str) -> str:
        return f"https://huggingface.co/papers/{quote(arxiv_id, safe='./-')}"


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
    data = load_json(body, "the API response")
    if isinstance(data, dict) and isinstance(data.get("dailyPapers"), list):
        data = data["dailyPapers"]
    if not isinstance(data, list):
        raise ScrapeError(f"the API response is a JSON {type(data).__name__}, not a list of papers")
    result = papers_from_items(data, parser="api")
    if not result.papers:
        raise ScrapeError(nothing_found("the API response", result))
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
            props = load_json(container["data-props"], "the page's data-props")
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
        log("scrape.layout_fallback", level=30, reason=warning)
    result = papers_from_cards(soup)
    result.warnings[:0] = warnings
    if not result.papers:
        raise ScrapeError(nothing_found("the page (neither data-props nor cards)", result))
    return result


# --- items (API and data-props) ------------------------------------------------------


def papers_from_items(items: list, parser: str) -> ParseResult:
    return collect(parser, items, paper_from_item, what="record")


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
    return collect("cards", soup.find_all("article"), paper_from_card, what="card")


def paper_from_card(article) -> ScrapedPaper | None:
    link = article.select_one('h3 > a[href^="/papers/"]') or article.select_one('h3 a[href^="/papers/"]')
    if link is None:
        return None  # not a paper card (e.g. an announcement)
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
