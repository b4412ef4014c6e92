"""Seed papers: the papers a reader names on their preferences page as "more like this".

A reader names a paper by its arXiv id or by a link to it (arXiv or Hugging Face); what is
kept is the bare arXiv id. A seed links to the stored Paper when there is one; one named
before any scrape saw it waits, and the scrape that stores the paper links it
(`link_stored`, called by newsletter/scraping/store.py), so the reader's model learns from
it from then on.
"""

import re
from urllib.parse import urlsplit

from newsletter.models import Paper, SeedPaper
from newsletter.personal.signals import reader_told_us

# New-style arXiv ids (since April 2007): YYMM.NNNN, five digits after the dot from 2015 on,
# with an optional version. The version is dropped: a seed names the paper, not one revision.
_ARXIV_ID = re.compile(r"(?P<yy>[0-9]{2})(?P<mm>[0-9]{2})\.(?P<number>[0-9]{4,5})(?:v[0-9]{1,3})?")
_ARXIV_PREFIX = re.compile(r"arxiv:\s*", re.IGNORECASE)
# host -> the paths that name one paper (the id is the last piece)
_PAPER_PATHS = {
    "arxiv.org": re.compile(r"/(?:abs|pdf|html)/(?P<id>[^/]+?)(?:\.pdf)?/?"),
    "huggingface.co": re.compile(r"/papers/(?P<id>[^/]+)/?"),
}
_HOST_ALIASES = {"www.arxiv.org": "arxiv.org", "export.arxiv.org": "arxiv.org", "www.huggingface.co": "huggingface.co", "hf.co": "huggingface.co"}

ACCEPTED = "an arXiv id such as 2401.12345 (or arXiv:2401.12345), or a link to the paper on arxiv.org or huggingface.co/papers"


class NotAPaperReference(ValueError):
    """The text names no arXiv paper in a form we accept."""


def _bare_id(text: str) -> str | None:
    match = _ARXIV_ID.fullmatch(text)
    if match is None or not 1 <= int(match["mm"]) <= 12:
        return None
    # Four digits after the dot until December 2014, five from January 2015.
    if (len(match["number"]) == 5) != (match["yy"] + match["mm"] >= "1501"):
        return None
    return f"{match['yy']}{match['mm']}.{match['number']}"


def _id_from_url(text: str) -> str | None:
    url = text if "://" in text else f"https://{text}"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or parts.username or parts.password or port:
        return None
    host = (parts.hostname or "").lower()
    pattern = _PAPER_PATHS.get(_HOST_ALIASES.get(host, host))
    match = pattern.fullmatch(parts.path) if pattern else None
    return _bare_id(match["id"]) if match else None


def parse_reference(text: str) -> str:
    """The arXiv id (without version) that `text` names: "2401.12345", "2401.12345v2",
    "arXiv:2401.12345", https://arxiv.org/abs/2401.12345 (or /pdf/), or
    https://huggingface.co/papers/2401.12345. Raises NotAPaperReference for anything else."""
    text = (text or "").strip()
    if len(text) <= 300:
        found = _bare_id(_ARXIV_PREFIX.sub("", text, count=1)) if _ARXIV_PREFIX.match(text) else _bare_id(text)
        if found is None and ("/" in text or "." in text):
            found = _id_from_url(text)
        if found:
            return found
    raise NotAPaperReference(f"That is not a paper we can look up. Please give {ACCEPTED}.")


def stored_paper(arxiv_id: str) -> Paper | None:
    return Paper.objects.filter(arxiv_id=arxiv_id).first()


def link_stored(arxiv_ids) -> int:
    """Link the waiting seeds that name any of `arxiv_ids` to their papers, now stored, and
    tell each of those readers' models. Called where a scrape stores papers (every id of the
    run, not only new papers: a seed added while the paper was being stored is caught the
    next time it trends). Returns the number of seeds linked."""
    waiting = list(
        SeedPaper.objects.filter(paper__isnull=True, arxiv_id__in=list(arxiv_ids)).values_list("arxiv_id", "subscriber_id")
    )
    if not waiting:
        return 0
    papers = dict(Paper.objects.filter(arxiv_id__in={arxiv_id for arxiv_id, _ in waiting}).values_list("arxiv_id", "pk"))
    linked = 0
    for arxiv_id, paper_id in papers.items():
        linked += SeedPaper.objects.filter(paper__isnull=True, arxiv_id=arxiv_id).update(paper_id=paper_id)
    for subscriber_id in sorted({subscriber_id for arxiv_id, subscriber_id in waiting if arxiv_id in papers}):
        reader_told_us(subscriber_id)
    return linked
