"""A paper as the public archive and the feeds show it, made safe once, here.

Every value of a paper was scraped. Text is reduced to one line of plain characters: line
breaks and other white space collapse to one space; control and format characters,
surrogates and noncharacters go (Atom is XML 1.0, which refuses most of them, and a page has
no use for them); provider merge syntax is made inert (newsletter/scraped.py), so text copied
from here into an email fills in nothing. Links are https only: the paper's page at its
source and arXiv (built from the id), the GitHub link only to a repository on github.com,
the project page only as a plain https URL. Templates then escape every value (Django's
autoescaping), in the pages and in the HTML of the feeds' entries."""

import re
from dataclasses import dataclass, field
from datetime import date, datetime

from django.urls import reverse
from django.utils import timezone

from newsletter.models import Paper
from newsletter.scraped import github_repo_url, https_url, strip_merge_syntax

AUTHORS_SHOWN = 3
SUMMARY_CHARS = 400
TITLE_CHARS = 300
# What an arXiv id looks like ("2611.01234", "2611.01234v2", "hep-th/9901001"): only such an id
# makes the arXiv and PDF links and the source's page link (no URL validation per paper needed).
_ARXIV_ID = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.\-/]{0,63}$")


def clean_text(value, limit: int | None = None) -> str:
    """`value` as one line of plain text with merge syntax made inert ("" if not a string),
    cut to `limit` characters (an ellipsis marks the cut)."""
    if not isinstance(value, str):
        return ""
    text = " ".join(value.split())  # every kind of white space and line break, \x1c-\x1f included
    # isprintable() is False for exactly the categories dropped here (and for white space other
    # than " ", which split() has replaced): the quick answer for almost every text.
    if not text.isprintable():
        text = " ".join("".join(ch for ch in text if ch.isprintable() or ch == " ").split())
    if limit and len(text) > limit:
        text = text[: limit - 1].rstrip() + "\u2026"
    # Last: dropping format characters (above) drops the zero-width spaces that keep a stored
    # tag inert, and cutting must not cut one off.
    return strip_merge_syntax(text)


def author_names(authors) -> list[str]:
    names = []
    for author in authors if isinstance(authors, list) else []:
        if author is None:
            continue
        name = clean_text(author.get("name") if isinstance(author, dict) else author, limit=120)
        if name:
            names.append(name)
    return names


@dataclass(frozen=True)
class TopicLink:
    slug: str
    name: str
    url: str


@dataclass
class ArchivedPaper:
    arxiv_id: str
    title: str
    authors: list[str]
    et_al: bool
    organization: str
    summary: str
    upvotes: int
    github_stars: int | None
    published: date | None
    # When it first trended here (an aware datetime): what "newest" means in the archive.
    first_seen_at: datetime
    paper_url: str
    source_label: str
    arxiv_url: str
    pdf_url: str
    github_url: str
    project_url: str
    topics: list[TopicLink] = field(default_factory=list)
    # On a day's page: its rank and upvotes on that day's scrape.
    rank: int | None = None

    @property
    def first_seen(self) -> date:
        return timezone.localdate(self.first_seen_at)

    @property
    def authors_line(self) -> str:
        return ", ".join(self.authors) + (" et al." if self.et_al else "")


# What the pages read of a paper (queries.paper_rows): never the JSON of keywords, and of the
# authors (a kilobyte of JSON a paper, often more) only the first ones, as `author_0`...
FIELDS = (
    "id", "arxiv_id", "title", "abstract", "ai_summary", "organization", "upvotes", "github_repo",
    "github_stars", "project_page", "published_at", "first_seen_at",
)
AUTHOR_SLOTS = AUTHORS_SHOWN + 1  # one more than shown: "et al." when it is there


def present(papers, topics_by_id: dict, ranks: dict | None = None) -> list[ArchivedPaper]:
    """`papers` (Paper objects from queries.py, their topic rows prefetched as
    `archive_scores`) as the archive shows them; `topics_by_id` are the active topics (the
    only ones shown); `ranks`: paper id -> (rank, upvotes) on a day. One query (each paper's
    source, for its page link), whatever the number of papers."""
    papers = list(papers)
    paper_sources = Paper.objects.sources_of([p.pk for p in papers]) if papers else {}
    links = {pk: TopicLink(t.slug, clean_text(t.name), reverse("archive:topic", args=[t.slug])) for pk, t in topics_by_id.items()}
    shown = []
    for paper in papers:
        source = paper_sources[paper.pk]
        linkable = bool(_ARXIV_ID.match(paper.arxiv_id))  # (then it needs no quoting in a URL)
        paper_url = source.paper_url(paper.arxiv_id) if linkable else ""
        authors = author_names([getattr(paper, f"author_{n}", None) for n in range(AUTHOR_SLOTS)])
        summary = clean_text(paper.ai_summary, SUMMARY_CHARS) or clean_text(paper.abstract, SUMMARY_CHARS)
        topics = [links[row.topic_id] for row in getattr(paper, "archive_scores", ()) if row.topic_id in links]
        rank, upvotes = (ranks or {}).get(paper.pk, (None, paper.upvotes))
        shown.append(
            ArchivedPaper(
                arxiv_id=clean_text(paper.arxiv_id),
                title=clean_text(paper.title, TITLE_CHARS) or clean_text(paper.arxiv_id),
                authors=authors[:AUTHORS_SHOWN],
                et_al=len(authors) > AUTHORS_SHOWN,
                organization=clean_text(paper.organization, 120),
                summary=summary,
                upvotes=upvotes,
                github_stars=paper.github_stars,
                published=timezone.localdate(paper.published_at) if paper.published_at else None,
                first_seen_at=paper.first_seen_at,
                paper_url=paper_url if paper_url.startswith("https://") else "",
                source_label=clean_text(source.label),
                arxiv_url=f"https://arxiv.org/abs/{paper.arxiv_id}" if linkable else "",
                pdf_url=f"https://arxiv.org/pdf/{paper.arxiv_id}" if linkable else "",
                github_url=github_repo_url(paper.github_repo),
                project_url=https_url(paper.project_page),
                topics=topics,
                rank=rank,
            )
        )
    return shown
