"""Rendering digests so that the cost does not grow with subscribers times email size.

Each paper's block (HTML with CSS inlined by css-inline, and plain text) is rendered once per
process and scrape; the page around them once per date and kind; a digest is then assembled
by joining strings, once per distinct list of papers. A paper shows only the reader's topics it
belongs to, each with a short "why": blocks are cached per (paper, topics shown), so each is
rendered once per distinct intersection, and a digest once per (papers, reader's topics). What
differs per recipient (their links and topic list) stays a merge field: a `MergeText` is the shared text cut at those fields, filled
per recipient by the provider (merge data) or by us.

Scraped text is escaped by Django's autoescaping in the HTML part; the text part is rendered
with autoescaping off, so it carries no HTML entities. Whatever the parser stored, scraped
values pass newsletter/scraped.py's rules again here: no merge syntax in text, a GitHub link
only to a repository on github.com.
"""

import re
import secrets
from functools import lru_cache
import unicodedata
from collections import OrderedDict
from dataclasses import dataclass
from urllib.parse import quote

import css_inline
from django.conf import settings
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.html import escape
from django.utils.text import Truncator

from newsletter import sources
from newsletter.models import Paper
from newsletter.scraped import github_repo_url, strip_merge_syntax
from newsletter.topic_assignment import why

from . import selection
from .links import MERGE_FIELDS

# Merge fields are written as [[<nonce>:<name>]]: the nonce is new in every process, so no
# scraped text can forge a field.
_NONCE = secrets.token_hex(8)
_FIELD_RE = re.compile(r"\[\[" + _NONCE + r":([a-z0-9_]+)\]\]")
AUTHORS_SHOWN = 3
SUMMARY_CHARS = 400
WHY_CHARS = 80  # "LLM reasoning: test-time scaling, math reasoning"
WHY_PHRASES = 3


_FIELD_RE_BYTES = re.compile(_FIELD_RE.pattern.encode())


def field(name: str) -> str:
    return f"[[{_NONCE}:{name}]]"


def feedback_field(paper_id: int) -> str:
    """The merge field of one paper's feedback token (links.feedback_values fills it)."""
    return f"fb_{paper_id}"


_SLOT = "FEEDBACK-SLOT"


@lru_cache(maxsize=4)
def _vote_url_pattern(site_url: str, action: str) -> tuple[str, str]:
    """The vote URL of `action` cut where the token goes (resolved once per process)."""
    before, after = reverse("feedback:vote", args=[_SLOT, action]).split(_SLOT)
    return f"{site_url}{before}", after


def feedback_urls(paper_id: int) -> tuple[str, str]:
    """The paper's "More like this" and "Less like this" URLs, its token a merge field."""
    token = field(feedback_field(paper_id))
    urls = []
    for action in ("more", "less"):
        before, after = _vote_url_pattern(settings.SITE_URL, action)
        urls.append(f"{before}{token}{after}")
    return urls[0], urls[1]


def split_fields(raw: bytes) -> list[bytes]:
    """Bytes cut at merge fields: literal, name, literal, ..., literal."""
    return _FIELD_RE_BYTES.split(raw)


class MergeText:
    """A text cut at its merge fields: literal, name, literal, name, ..., literal."""

    __slots__ = ("parts",)

    def __init__(self, parts: list[str]):
        self.parts = parts

    @classmethod
    def parse(cls, text: str) -> "MergeText":
        return cls(_FIELD_RE.split(text))

    @property
    def field_names(self) -> set[str]:
        return set(self.parts[1::2])

    def fill(self, values: dict[str, str]) -> str:
        parts = self.parts[:]
        for i in range(1, len(parts), 2):
            parts[i] = values[parts[i]]
        return "".join(parts)

    def with_fields(self, field_format: str) -> str:
        """The text with each field in the provider's syntax, e.g. "%recipient.{}%"."""
        return self.fill({name: field_format.format(name) for name in self.field_names})


@dataclass(frozen=True)
class RenderedDigest:
    subject: str
    html: MergeText
    text: MergeText
    paper_ids: tuple[int, ...]

    def for_recipient(self, values: dict[str, str]) -> tuple[str, str]:
        return self.html.fill(values), self.text.fill(values)


# --- scraped text ---------------------------------------------------------------------------

_CONTROL = {c: None for c in range(32) if c not in (9, 10, 13)} | {0x7F: None}


def one_line(text: str, limit: int | None = None) -> str:
    """Control characters and line breaks removed (header-safe), whitespace collapsed."""
    text = "".join(ch for ch in (text or "") if unicodedata.category(ch) not in ("Cc", "Zl", "Zp", "Cf") or ch == " ")
    text = " ".join(text.split())
    return Truncator(text).chars(limit) if limit else text


def _clean(text: str) -> str:
    # one_line first: it drops the zero-width spaces that keep merge syntax inert.
    return strip_merge_syntax(one_line(text))


def _author_names(authors) -> list[str]:
    names = []
    for author in authors or []:
        name = author.get("name") if isinstance(author, dict) else author
        if isinstance(name, str) and name.strip():
            names.append(_clean(name))
    return names


def topic_why(name: str, evidence=()) -> dict:
    """A topic as a digest shows it: {"name", "evidence", "why"}, "why" being
    "LLM reasoning: test-time scaling, math reasoning" (topic_assignment.why) in at most
    WHY_CHARS characters (fewer phrases rather than a cut one). The evidence is scraped-derived:
    cleaned like all scraped text."""
    name = _clean(name)
    phrases = [p for p in dict.fromkeys(_clean(p) for p in evidence if isinstance(p, str)) if p]
    for limit in range(min(WHY_PHRASES, len(phrases)), 0, -1):
        text = why(name, phrases[:limit], limit=WHY_PHRASES)
        if len(text) <= WHY_CHARS:
            return {"name": name, "evidence": ", ".join(phrases[:limit]), "why": text}
    name = Truncator(name).chars(WHY_CHARS)
    return {"name": name, "evidence": "", "why": name}


def paper_context(paper: Paper, topics, source=None, note: str = "") -> dict:
    """`topics`: what to show of the paper's topics, best first: selection.TopicReason-like
    objects (name, evidence) or bare names. `source`: the paper source that links to its page
    (newsletter.sources; default: the configured one). `note`: the ranking's personal reason
    ("Because you liked: ..."), raw."""
    more_url, less_url = feedback_urls(paper.pk)
    authors = _author_names(paper.authors)
    arxiv_id = quote(paper.arxiv_id, safe="./-")
    summary = _clean(paper.ai_summary) or Truncator(_clean(paper.abstract)).chars(SUMMARY_CHARS)
    source = source or sources.default()
    return {
        "title": _clean(paper.title),
        "paper_url": source.paper_url(paper.arxiv_id),
        "source_label": source.label,
        "arxiv_url": f"https://arxiv.org/abs/{arxiv_id}",
        "authors": authors[:AUTHORS_SHOWN],
        "et_al": len(authors) > AUTHORS_SHOWN,
        "upvotes": paper.upvotes,
        "summary": summary,
        "topics": [topic_why(t) if isinstance(t, str) else topic_why(t.name, t.evidence) for t in topics],
        "github_url": github_repo_url(paper.github_repo),
        "github_stars": paper.github_stars,
        "note": Truncator(_clean(note)).chars(WHY_CHARS + 40) if note else "",
        "more_url": more_url,
        "less_url": less_url,
    }


def subject_for(kind: str, first_title: str, count: int) -> str:
    # _clean, not one_line alone: one_line drops the zero-width space that keeps a scraped
    # "%recipient.x%" from being substituted by the provider in the subject.
    top = Truncator(_clean(first_title)).chars(80)
    more = f" (+{count - 1} more)" if count > 1 else ""
    prefix = "Your week in papers" if kind == "weekly" else "Trending papers"
    return f"{prefix}: {top}{more}"


# --- the renderer ---------------------------------------------------------------------------


class DigestRenderer:
    """Per-process caches: paper blocks per scrape pool and topics shown, page shells per kind,
    whole digests per (papers, pool, kind, reader's topics), the latter bounded (least
    recently used goes)."""

    max_digests = 256
    max_blocks = 20_000

    def __init__(self):
        self._css = None
        # (paper id, ids of the topics shown) -> (html, text, title)
        self._blocks: dict[tuple, tuple[str, str, str]] = {}
        # paper id -> the Paper (loaded once per pool, whatever topics its blocks show)
        self._papers: dict[int, Paper] = {}
        self._blocks_pool_key = None
        self._shells: dict[tuple, tuple[str, str]] = {}
        self._digests: OrderedDict = OrderedDict()

    @property
    def css(self) -> tuple[str, str]:
        if self._css is None:
            self._css = (render_to_string("emails/_digest.css"), render_to_string("emails/_digest_dark.css"))
        return self._css

    def render(self, paper_ids, pool, kind: str, topic_ids=None, notes=None) -> RenderedDigest:
        """The digest of `paper_ids` for readers of `topic_ids` (each paper shows those of its
        topics, with why; None: all of them) and the ranking's `notes` (paper id -> personal
        reason; selection.Choice.notes by default). Readers with the same of all three share it."""
        if notes is None:
            notes = getattr(paper_ids, "notes", None) or {}
        topics_key = None if topic_ids is None else tuple(sorted(set(topic_ids)))
        notes_key = tuple(sorted((pk, note) for pk, note in notes.items() if note))
        key = (tuple(paper_ids), pool.key, kind, topics_key, notes_key)
        digest = self._digests.get(key)
        if digest is not None:
            self._digests.move_to_end(key)
            return digest
        digest = self._assemble(tuple(paper_ids), pool, kind, topics_key, dict(notes_key))
        self._digests[key] = digest
        if len(self._digests) > self.max_digests:
            self._digests.popitem(last=False)
        return digest

    def _assemble(self, paper_ids, pool, kind, topic_ids, notes) -> RenderedDigest:
        blocks = self._paper_blocks(paper_ids, pool, topic_ids, notes)
        html_shell, text_shell = self._shell(kind)
        titles = [block[2] for block in blocks]
        subject = subject_for(kind, titles[0] if titles else "", len(paper_ids))
        preheader = escape(Truncator("; ".join(titles)).chars(140))
        papers_html = "".join(block[0] for block in blocks)
        papers_text = "\n".join(f"{n}. {block[1]}" for n, block in enumerate(blocks, start=1))
        count_label = "1 paper" if len(paper_ids) == 1 else f"{len(paper_ids)} papers"
        html = (
            html_shell.replace(field("papers_slot"), papers_html)
            .replace(field("preheader"), preheader)
            .replace(field("paper_count_label"), count_label)
        )
        text = text_shell.replace(field("papers_slot"), papers_text).replace(field("paper_count_label"), count_label)
        return RenderedDigest(subject=subject, html=MergeText.parse(html), text=MergeText.parse(text), paper_ids=paper_ids)

    def _paper_blocks(self, paper_ids, pool, topic_ids, notes=None) -> list[tuple[str, str, str]]:
        """Each paper's (html, text, title), in order, showing its topics among `topic_ids`
        and its note, if any."""
        notes = notes or {}
        if self._blocks_pool_key != pool.key:
            self._blocks, self._papers, self._blocks_pool_key = {}, {}, pool.key
        shown = {pk: selection.shown_reasons(pool, pk, topic_ids) for pk in paper_ids}
        keys = {pk: (pk, tuple(r.topic_id for r in shown[pk]), notes.get(pk, "")) for pk in paper_ids}
        missing = [pk for pk in paper_ids if keys[pk] not in self._blocks]
        if missing:
            unloaded = [pk for pk in missing if pk not in self._papers]
            if unloaded:
                self._papers.update(Paper.objects.in_bulk(unloaded))
            if len(self._blocks) + len(missing) > self.max_blocks:
                self._blocks.clear()
            css, _ = self.css
            for pk in missing:
                context = paper_context(self._papers[pk], shown[pk], pool.sources.get(pk), notes.get(pk, ""))
                html = css_inline.inline_fragment(render_to_string("emails/_digest_paper.html", context), css)
                text = render_to_string("emails/_digest_paper.txt", context).strip() + "\n"
                self._blocks[keys[pk]] = (html, text, context["title"])
        return [self._blocks[keys[pk]] for pk in paper_ids]

    def _shell(self, kind) -> tuple[str, str]:
        key = kind
        if key not in self._shells:
            css, dark_css = self.css
            context = {
                "css": css,
                "merge": {name: field(name) for name in MERGE_FIELDS},
                "papers_slot": field("papers_slot"),
                "preheader": field("preheader"),
                "heading": f"Your {'weekly' if kind == 'weekly' else 'daily'} trending papers",
                "kind_label": "weekly" if kind == "weekly" else "daily",
                "site_name": settings.SITE_NAME,
                "postal_address": settings.SENDER_POSTAL_ADDRESS,
                "paper_count_label": field("paper_count_label"),
            }
            html = render_to_string("emails/digest.html", context)
            html = css_inline.inline(html)
            # Media queries (dark mode, narrow screens) cannot be inlined: they stay in <head>.
            html = html.replace("</head>", f"<style>{dark_css}</style></head>", 1)
            text = render_to_string("emails/digest.txt", context)
            if len(self._shells) > 32:
                self._shells.clear()
            self._shells[key] = (html, text)
        return self._shells[key]


renderer = DigestRenderer()
