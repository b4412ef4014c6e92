"""Rendering digests so that the cost does not grow with subscribers times email size.

Each paper's block (HTML with CSS inlined by css-inline, and plain text) is rendered once per
process and scrape; the page around them once per date and kind; a digest is then assembled
by joining strings. A paper shows only the reader's topics it belongs to, each with a short
"why": blocks are cached per (paper, topics shown). The ranking's personal note on a paper
("Because you liked: ...") and the paper's feedback token are fields of its block, so a note
never costs a new rendering. What differs per recipient (their links, topic list and feedback
tokens) stays a merge field: a `MergeText` is the shared text cut at those fields, filled per
recipient by the provider (merge data) or by us.

Two ways to assemble, for the two ways of sending (chunks.py):
- a digest shared by many readers: `render()`, the whole email once per (papers, notes,
  reader's topics), its papers in the text;
- digests that differ per reader: `personal_shell()`, one email per kind whose papers,
  subject, preheader and count are merge fields too (PERSONAL_FIELDS), and one `PaperSection`
  per reader (`section()`): their blocks joined, notes filled in, ready to be one recipient's
  merge values in a batch call that carries many different digests.

Scraped text is escaped by Django's autoescaping in the HTML part; the text part is rendered
with autoescaping off, so it carries no HTML entities. Whatever the parser stored, scraped
values pass newsletter/scraped.py's rules again here: no merge syntax in text, a GitHub link
only to a repository on github.com.
"""

import json
import re
import secrets
import unicodedata
from collections import Counter, OrderedDict
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple
from urllib.parse import quote

import css_inline
from django.conf import settings
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.html import escape
from django.utils.text import Truncator

from newsletter import sources
from newsletter.encoded_json import EncodedStr, escaped, is_plain
from newsletter.models import Paper
from newsletter.scraped import github_repo_url, https_url, merge_tags, strip_merge_syntax
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


def note_field(paper_id: int) -> str:
    """The field of a paper's personal note in its block (filled when a digest is assembled)."""
    return f"note_{paper_id}"


# The fields of a personal shell (personal_shell()): what a shared digest has written in, a
# batch of different digests gets per recipient (PaperSection.values).
PERSONAL_FIELDS = ("subject", "preheader", "paper_count_label", "papers_html", "papers_text")

# The merge tags of every provider (newsletter/scraped.py, email_providers/*.py) are
# %name...%, {{ and -name- (SendGrid's, for our own keys), none holding white space;
# tests/test_personal_sending.py checks that no other syntax is registered. So a tag can only
# reach across a field from the non-blank characters next to it, and only if those hold a "%",
# a "{", or a "-" that could begin or end a -name- tag there (see MergeText.inert_edges).
_MAY_OPEN_DASH_TAG = re.compile(r"-[A-Za-z0-9_]*\Z")
_MAY_CLOSE_DASH_TAG = re.compile(r"\A[A-Za-z0-9_]*-")
# Longest feedback token (newsletter/feedback/tokens.py: three ids of up to 18 digits and a
# 43-character signature), for what a reader's papers weigh in a provider call.
MAX_TOKEN_CHARS = 3 * 18 + 2 + 1 + 43


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

    @property
    def source(self) -> str:
        """The text with its fields written as fields again (for parse())."""
        return self.with_fields(field("{}"))

    def fill(self, values: dict[str, str]) -> str:
        parts = self.parts[:]
        for i in range(1, len(parts), 2):
            parts[i] = values[parts[i]]
        return "".join(parts)

    def with_fields(self, field_format: str) -> str:
        """The text with each field in the provider's syntax, e.g. "%recipient.{}%"."""
        return self.fill({name: field_format.format(name) for name in self.field_names})

    def literal_tags(self) -> Counter:
        """The merge tags in the text itself, outside its fields."""
        return merge_tags("\n".join(self.parts[::2]))

    def inert_edges(self) -> bool:
        """Whether filling the fields with values that hold no merge tag can make no tag
        either: tags are runs of non-blank characters, so one that reached across a field
        would begin or end in the non-blank characters next to it (or run from one value
        through an all-non-blank literal into the next)."""
        literals = self.parts[::2]
        if len(literals) == 1:
            return True
        for literal in literals:
            if not any(ch.isspace() for ch in literal):
                return False
        for before, after in zip(literals, literals[1:]):
            end, start = _blank_free_end(before), _blank_free_start(after)
            if "%" in end + start or "{" in end + start:
                return False
            if _MAY_OPEN_DASH_TAG.search(end) or _MAY_CLOSE_DASH_TAG.match(start):
                return False
        return True


def _blank_free_end(text: str) -> str:
    n = len(text)
    while n and not text[n - 1].isspace():
        n -= 1
    return text[n:]


def _blank_free_start(text: str) -> str:
    n = 0
    while n < len(text) and not text[n].isspace():
        n += 1
    return text[:n]


@dataclass(frozen=True)
class RenderedDigest:
    subject: str  # may be a field (a personal shell's)
    html: MergeText
    text: MergeText
    paper_ids: tuple[int, ...]

    def for_recipient(self, values: dict[str, str]) -> tuple[str, str]:
        return self.html.fill(values), self.text.fill(values)

    def subject_for(self, values: dict[str, str]) -> str:
        return MergeText.parse(self.subject).fill(values)


@dataclass(frozen=True, eq=False)
class PaperBlock:
    """One paper as a digest shows it to readers of some topics: HTML (CSS inlined) and text,
    with its feedback token and, in the variant that has one, its note as fields."""

    paper_id: int
    html: MergeText
    text: MergeText
    title: str
    topics: tuple[str, ...]  # the names of the topics it is shown under
    tags: Counter  # merge tags in its own text (none: scraped text is cleaned)
    inert: bool  # no value filled into its fields can make a tag (MergeText.inert_edges)
    json_chars: int  # its HTML and text as JSON strings, tokens in: what it adds to a provider call
    # html and text with their literal parts escaped for a JSON string (encoded_json.escaped)
    html_json: MergeText
    text_json: MergeText


@dataclass(frozen=True, eq=False)
class PaperSection:
    """One digest's own part, for a reader of a personal shell: its papers (blocks joined in
    order, notes filled in, each paper's feedback token still a field), subject, preheader and
    paper count. `values(tokens)` are the recipient's merge values of PERSONAL_FIELDS."""

    paper_ids: tuple[int, ...]
    subject: str
    preheader: str  # HTML-escaped
    count_label: str
    html: MergeText
    text: MergeText
    tags: Counter  # merge tags in everything but the tokens (blocks, notes, subject, preheader)
    inert: bool  # tags + the tokens' own tags are all the tags of values(tokens)
    json_chars: int  # about what values() add to a call as JSON (tokens at their longest)
    # html and text with their literal parts escaped for a JSON string (PaperBlock's)
    html_json: MergeText
    text_json: MergeText

    def values(self, tokens: dict[str, str], date_label: str) -> dict[str, str]:
        """`date_label`: the recipient's date in the subject (links: "date_short"). The
        papers come as EncodedStr, their JSON spliced from the blocks' (a provider call's
        JSON then copies rather than escapes them), when the tokens need no escaping."""
        html, text = self.html.fill(tokens), self.text.fill(tokens)
        if is_plain("".join(tokens.values())):
            html = EncodedStr(html, f'"{self.html_json.fill(tokens)}"')
            text = EncodedStr(text, f'"{self.text_json.fill(tokens)}"')
        return {
            "subject": dated_subject(self.subject, date_label),
            "preheader": self.preheader,
            "paper_count_label": self.count_label,
            "papers_html": html,
            "papers_text": text,
        }


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


THUMBNAIL_SIZE = (552, 290)  # the card's inner width; Hugging Face's thumbnails are about 1.9:1


def paper_context(paper: Paper, topics, source=None, note: str = "", rank=None) -> dict:
    """`topics`: what to show of the paper's topics, best first: selection.TopicReason-like
    objects (name, evidence) or bare names. `source`: the paper source that links to its page
    (newsletter.sources; default: the configured one). `note`: the ranking's personal reason
    ("Because you liked: ..."), raw. `rank`: where it stood on the trending page
    (trending.TrendingRank), if known."""
    more_url, less_url = feedback_urls(paper.pk)
    authors = _author_names(paper.authors)
    arxiv_id = quote(paper.arxiv_id, safe="./-")
    ai_summary = _clean(paper.ai_summary)
    source = source or sources.default()
    title = _clean(paper.title)
    paper_url = source.paper_url(paper.arxiv_id)
    return {
        "title": title,
        "paper_url": paper_url,
        "source_label": source.label,
        "arxiv_url": f"https://arxiv.org/abs/{arxiv_id}",
        "pdf_url": f"https://arxiv.org/pdf/{arxiv_id}",
        "project_url": https_url(paper.project_page),
        "rank_label": rank.label if rank else "",
        "published": paper.published_at.date() if paper.published_at else None,
        "organization": Truncator(_clean(paper.organization)).chars(60),
        "thumbnail": thumbnail_context(paper, title),
        "authors": authors[:AUTHORS_SHOWN],
        "et_al": len(authors) > AUTHORS_SHOWN,
        "upvotes": paper.upvotes,
        # The source's AI summary when it has one (shorter), with a link to the abstract on the
        # paper's page; else the abstract itself, cut.
        "summary": ai_summary or Truncator(_clean(paper.abstract)).chars(SUMMARY_CHARS),
        "summary_is_ai": bool(ai_summary),
        "abstract_url": paper_url,
        "topics": [topic_why(t) if isinstance(t, str) else topic_why(t.name, t.evidence) for t in topics],
        "github_url": github_repo_url(paper.github_repo),
        "github_stars": paper.github_stars,
        "github_stars_label": f"{paper.github_stars:,}" if paper.github_stars is not None else "",
        "note": note_text(note),
        "more_url": more_url,
        "less_url": less_url,
    }


def thumbnail_context(paper: Paper, title: str) -> dict | None:
    """The paper's thumbnail as a digest shows it (https only: a mixed-content or tracking
    scheme never reaches a reader), sized so the layout holds while images are blocked, with
    alt text that stands in for it."""
    url = https_url(paper.thumbnail)
    if not url:
        return None
    width, height = THUMBNAIL_SIZE
    return {"url": url, "width": width, "height": height, "alt": f"Thumbnail: {Truncator(title).chars(80)}"}


@lru_cache(maxsize=8192)
def note_text(note: str) -> str:
    """A ranking's note as a digest shows it: cleaned like scraped text (it quotes titles and
    author names), at most WHY_CHARS + 40 characters."""
    return Truncator(_clean(note)).chars(WHY_CHARS + 40) if note else ""


def count_label(count: int) -> str:
    return "1 paper" if count == 1 else f"{count} papers"


PREHEADER_CHARS = 140


def preheader_for(titles: tuple[str, ...]) -> str:
    """The hidden preview line: the titles, cut at 140 characters, HTML-escaped."""
    joined = "; ".join(titles)
    # Truncator normalises (NFC) and counts characters from the start until it passes 140:
    # when the titles and their head are both normalised already, a cut it makes inside the
    # head is the cut it makes in the whole (it makes one there unless the head holds
    # combining characters). Heads repeat (readers' first papers do), so the cut of a head is
    # cached; Truncator costs tens of microseconds even for ASCII.
    head = joined[: PREHEADER_CHARS + 1]
    if head != joined and unicodedata.is_normalized("NFC", head) and unicodedata.is_normalized("NFC", joined):
        cut = _preheader_cut(head)
        if cut != head:
            return escape(cut)
    return escape(_preheader_cut(joined))


@lru_cache(maxsize=8192)
def _preheader_cut(text: str) -> str:
    return Truncator(text).chars(PREHEADER_CHARS)


SUBJECT_CHARS = 70  # what an inbox shows of a subject on a phone, about
DATE_SUFFIX_CHARS = len(" · 30 Sep")


@lru_cache(maxsize=4096)
def subject_for(kind: str, topic_names: tuple[str, ...], count: int) -> str:
    """"4 new in LLM reasoning, Agents": the count and the reader's topics among the papers,
    most papers first, as many whole names as fit in SUBJECT_CHARS with the date added
    (dated_subject, per recipient). Topic names are the operator's, cleaned all the same:
    they come from the admin, and a subject is a header."""
    head = f"{count} this week in " if kind == "weekly" else f"{count} new in "
    names = [n for n in (_clean(name) for name in topic_names) if n]
    if not names:
        return f"{count_label(count)} this week" if kind == "weekly" else f"{count_label(count)} trending today"
    room = SUBJECT_CHARS - DATE_SUFFIX_CHARS - len(head)
    for shown in range(len(names), 0, -1):
        rest = len(names) - shown
        text = ", ".join(names[:shown]) + (f" +{rest} more" if rest else "")
        if len(text) <= room:
            return head + text
    rest = f" +{len(names) - 1} more" if len(names) > 1 else ""
    return head + Truncator(names[0]).chars(room - len(rest)) + rest


def dated_subject(subject: str, date_label: str) -> str:
    """The subject as sent: "4 new in LLM reasoning, Agents · 30 Nov". The date is the
    recipient's (links.MERGE_FIELDS "date_short"): readers are on two dates at any moment."""
    return f"{subject} · {date_label}"


def subject_topics(topics_per_paper) -> tuple[str, ...]:
    """The topics the papers are shown under (the reader's; one tuple of names per paper),
    most papers first, then in the order they first appear."""
    counts: Counter = Counter()
    for names in topics_per_paper:
        counts.update(names)
    return tuple(name for name, _ in counts.most_common())


# --- the renderer ---------------------------------------------------------------------------


class _SectionOwn(NamedTuple):
    """What a section is made of before it is joined: its blocks, notes, subject, preheader,
    count and how much its values add to a call as JSON."""

    paper_ids: tuple[int, ...]
    blocks: list
    noted: frozenset
    html_notes: dict[str, str]
    text_notes: dict[str, str]
    subject: str
    preheader: str
    count_label: str
    texts: tuple[str, ...]  # its own short texts (subject, preheader, count, notes)
    json_chars: int



class DigestRenderer:
    """Per-process caches: paper blocks per scrape pool and topics shown (each in two variants:
    without a note, and with its note as a field), page shells per kind, whole shared digests
    per (papers, notes, pool, kind, reader's topics), the latter bounded (least recently used
    goes)."""

    max_digests = 256
    max_blocks = 20_000

    def __init__(self):
        self._css = None
        # (paper id, ids of the topics shown, has a note) -> PaperBlock
        self._blocks: dict[tuple, PaperBlock] = {}
        # (paper id, the reader's topic ids, has a note) -> the same blocks
        self._blocks_for: dict[tuple, PaperBlock] = {}
        # paper id -> the Paper (loaded once per pool, whatever topics its blocks show)
        self._papers: dict[int, Paper] = {}
        self._blocks_pool_key = None
        self._shells: dict[tuple, tuple[str, str]] = {}
        self._personal_shells: dict[str, RenderedDigest] = {}
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
        digest = self._assemble(self.section(paper_ids, pool, kind, topics_key, dict(notes_key)), kind)
        self._digests[key] = digest
        if len(self._digests) > self.max_digests:
            self._digests.popitem(last=False)
        return digest

    def _assemble(self, section: "PaperSection", kind) -> RenderedDigest:
        html_shell, text_shell = self._shell(kind)
        html = (
            html_shell.replace(field("papers_slot"), section.html.source)
            .replace(field("preheader"), section.preheader)
            .replace(field("paper_count_label"), section.count_label)
        )
        text = text_shell.replace(field("papers_slot"), section.text.source).replace(field("paper_count_label"), section.count_label)
        return RenderedDigest(subject=dated_subject(section.subject, field("date_short")),
                              html=MergeText.parse(html), text=MergeText.parse(text),
                              paper_ids=section.paper_ids)

    def personal_shell(self, kind: str) -> RenderedDigest:
        """The email of `kind` around any reader's papers: its subject, preheader, paper count
        and papers (both parts) are fields too (PERSONAL_FIELDS), filled per recipient from
        their PaperSection, so one batch call can carry many different digests."""
        shell = self._personal_shells.get(kind)
        if shell is None:
            html_shell, text_shell = self._shell(kind)
            html = html_shell.replace(field("papers_slot"), field("papers_html"))
            text = text_shell.replace(field("papers_slot"), field("papers_text"))
            shell = self._personal_shells[kind] = RenderedDigest(
                subject=field("subject"), html=MergeText.parse(html), text=MergeText.parse(text), paper_ids=()
            )
        return shell

    def section(self, paper_ids, pool, kind: str, topic_ids=None, notes=None) -> PaperSection:
        """One digest's papers, subject, preheader and count (see PaperSection): the same
        arguments as render(), assembled from the cached blocks by joining strings."""
        own = self._section_own(paper_ids, pool, kind, topic_ids, notes)
        html_json_notes = {name: escaped(note) for name, note in own.html_notes.items()}
        text_json_notes = {name: escaped(note) for name, note in own.text_notes.items()}
        # Joined part by part (a reader of a personal shell costs one of these), and so their
        # JSON forms, from the blocks' escaped parts.
        html, text, html_json, text_json = [""], [""], [""], [""]
        for n, block in enumerate(own.blocks, start=1):
            noted = block.paper_id in own.noted  # only then has it a field to fill here
            _append(html, block.html.parts, own.html_notes, noted)
            _append(html_json, block.html_json.parts, html_json_notes, noted)
            number = f"\n{n}. " if n > 1 else "1. "
            text[-1] += number
            text_json[-1] += escaped(number)
            _append(text, block.text.parts, own.text_notes, noted)
            _append(text_json, block.text_json.parts, text_json_notes, noted)
        tags = merge_tags("\n".join(own.texts))
        for block in own.blocks:
            if block.tags:
                tags.update(block.tags)
        return PaperSection(
            paper_ids=own.paper_ids, subject=own.subject, preheader=own.preheader, count_label=own.count_label,
            html=MergeText(html), text=MergeText(text), tags=tags, inert=all(b.inert for b in own.blocks),
            json_chars=own.json_chars, html_json=MergeText(html_json), text_json=MergeText(text_json),
        )

    def section_json_chars(self, paper_ids, pool, kind: str, topic_ids=None, notes=None) -> int:
        """section(...).json_chars without joining anything: what a reader of it adds to a
        provider call, known before their section is built (a chunk's sections are built a
        call at a time)."""
        return self._section_own(paper_ids, pool, kind, topic_ids, notes).json_chars

    def _section_own(self, paper_ids, pool, kind, topic_ids, notes) -> "_SectionOwn":
        paper_ids = tuple(paper_ids)
        notes = {pk: note_text(note) for pk, note in (notes or {}).items() if note and pk in paper_ids}
        topics_key = None if topic_ids is None else tuple(sorted(set(topic_ids)))
        blocks = self._paper_blocks(paper_ids, pool, topics_key, set(notes))
        html_notes = {note_field(pk): escape(note) for pk, note in notes.items()}
        text_notes = {note_field(pk): note for pk, note in notes.items()}
        subject = subject_for(kind, subject_topics(b.topics for b in blocks), len(paper_ids))
        preheader, label = preheader_for(tuple(b.title for b in blocks)), count_label(len(paper_ids))
        texts = (subject, preheader, label, *html_notes.values(), *text_notes.values())
        # JSON escapes at most double a character of this short text (or make it \uXXXX).
        json_chars = sum(b.json_chars for b in blocks) + sum(6 * len(v) + 2 for v in texts)
        return _SectionOwn(paper_ids, blocks, frozenset(notes), html_notes, text_notes, subject, preheader, label,
                           texts, json_chars)

    def _paper_blocks(self, paper_ids, pool, topic_ids, noted=frozenset()) -> list[PaperBlock]:
        """Each paper's block, in order, showing its topics among `topic_ids`, with a note
        field for the papers in `noted`."""
        if self._blocks_pool_key != pool.key:
            self._blocks, self._papers, self._blocks_pool_key = {}, {}, pool.key
            self._blocks_for = {}
        # Straight from the reader's topics to the block (what most readers of a chunk need).
        found = [self._blocks_for.get((pk, topic_ids, pk in noted)) for pk in paper_ids]
        if None not in found:
            return found
        shown = {pk: selection.shown_reasons(pool, pk, topic_ids) for pk in paper_ids}
        keys = {pk: (pk, tuple(r.topic_id for r in shown[pk]), pk in noted) for pk in paper_ids}
        missing = [pk for pk in paper_ids if keys[pk] not in self._blocks]
        if missing:
            unloaded = [pk for pk in missing if pk not in self._papers]
            if unloaded:
                self._papers.update(Paper.objects.in_bulk(unloaded))
            if len(self._blocks) + len(missing) > self.max_blocks:
                self._blocks.clear()
                self._blocks_for.clear()
            for pk in missing:
                self._blocks[keys[pk]] = self._block(self._papers[pk], shown[pk], pool, pk in noted)
        if len(self._blocks_for) > self.max_blocks:
            self._blocks_for.clear()
        found = []
        for pk in paper_ids:
            found.append(self._blocks[keys[pk]])
            self._blocks_for[(pk, topic_ids, pk in noted)] = found[-1]
        return found

    def _block(self, paper, shown, pool, noted: bool) -> PaperBlock:
        css, _ = self.css
        context = paper_context(paper, shown, pool.sources.get(paper.pk), rank=pool.ranks.get(paper.pk))
        if noted:
            context["note"] = field(note_field(paper.pk))
        html = compact_styles(css_inline.inline_fragment(render_to_string("emails/_digest_paper.html", context), css))
        text = render_to_string("emails/_digest_paper.txt", context).strip() + "\n"
        html_text, text_text = MergeText.parse(html), MergeText.parse(text)
        fields = (len(html_text.parts) + len(text_text.parts)) // 2
        return PaperBlock(
            paper_id=paper.pk, html=html_text, text=text_text, title=context["title"],
            topics=tuple(t["name"] for t in context["topics"]),
            tags=html_text.literal_tags() + text_text.literal_tags(),
            inert=html_text.inert_edges() and text_text.inert_edges(),
            json_chars=len(json.dumps("".join(html_text.parts[::2]))) + len(json.dumps("".join(text_text.parts[::2])))
            + fields * MAX_TOKEN_CHARS,
            html_json=_escaped_literals(html_text), text_json=_escaped_literals(text_text),
        )

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
                self._personal_shells.clear()
            self._shells[key] = (html, text)
        return self._shells[key]


# An inlined style attribute in a tag, as css-inline writes them: "margin: 0 0 8px;color: #5b5b66;".
# Anchored on the tag's "<", which text never holds unescaped, so scraped text is never touched.
_STYLE_ATTRIBUTE = re.compile(r'(<[A-Za-z][^<>]*?) style="([^"]*)"')


def compact_styles(html: str) -> str:
    """Inlined style attributes without the blank after each property name and the last
    semicolon: the same declarations (CSS ignores both), some 3% fewer bytes of each paper in
    every reader's merge values. None of the digest's CSS values holds ": "."""
    return _STYLE_ATTRIBUTE.sub(lambda m: f'{m[1]} style="{m[2].replace(": ", ":").rstrip(";")}"', html)


def _escaped_literals(text: MergeText) -> MergeText:
    """`text` with its literal parts escaped for a JSON string, its fields kept."""
    return MergeText([part if i % 2 else escaped(part) for i, part in enumerate(text.parts)])


def _append(parts: list[str], more: list[str], fill: dict[str, str], filling: bool = True) -> None:
    """MergeText parts `more` added to `parts`, the fields in `fill` filled in. `filling`
    False: `more` has none of them (its fields are added as they are, without a look-up)."""
    parts[-1] += more[0]
    if not filling:
        parts.extend(more[1:])
        return
    for i in range(1, len(more), 2):
        value = fill.get(more[i])
        if value is None:
            parts.extend((more[i], more[i + 1]))
        else:
            parts[-1] += value + more[i + 1]


renderer = DigestRenderer()
