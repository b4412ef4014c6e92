"""What a reader tells us on their preferences page beyond topics and schedule (issue 11,
"Telling it more"): their own words about what they want to read, the opt-in paper from
outside their topics, the authors they follow, their seed papers, and taking back a like.

Like every change of a subscriber's choices (actions.py), a change is written to the consent
log in the same transaction, and only when something did change; and it tells the reader's
model (newsletter.personal.signals.reader_told_us: the profile becomes stale and is trained
again after the commit). A preferences link is the only credential, so what one link can
store is bounded (READER_MAX_FOLLOWED_AUTHORS, READER_MAX_SEED_PAPERS).
"""

from dataclasses import dataclass, field

from django.db import transaction

from newsletter import seed_papers
from newsletter.app_settings import app_settings
from newsletter.author_papers import papers_by
from newsletter.models import FollowedAuthor, Paper, SeedPaper, Vote
from newsletter.personal.authors import author_key
from newsletter.personal.signals import reader_told_us

from .actions import Origin, log_event
from .models import ConsentEvent, Subscriber

LIKES_SHOWN = 50
AUTHOR_PAPERS_SHOWN = 3


class LimitReached(Exception):
    """The reader has as many of these as one reader may keep."""

    def __init__(self, field_name: str, message: str):
        super().__init__(message)
        self.field_name = field_name
        self.message = message


def _told_us(subscriber: Subscriber, origin: Origin, changes: dict) -> dict:
    if changes:
        log_event(subscriber, ConsentEvent.Kind.PREFERENCES, origin, changes=changes)
        reader_told_us(subscriber.pk)
    return changes


def _locked(subscriber: Subscriber) -> Subscriber:
    # One change at a time per reader: the limits hold under simultaneous requests.
    return Subscriber.objects.select_for_update().get(pk=subscriber.pk)


@transaction.atomic
def save(subscriber: Subscriber, origin: Origin, *, interests: str, outside_topics: bool,
         follow_author: str = "", seed_paper: str = "") -> dict:
    """Apply the "What you want to read" form: its words and opt-in, and the author and the
    seed paper (an arXiv id, see newsletter.seed_papers) it adds, if any. All or nothing:
    raises LimitReached (and changes nothing) past a limit. Returns the changes logged."""
    subscriber = _locked(subscriber)
    changes = {}
    if follow_author:
        key = author_key(follow_author)
        follows = subscriber.followed_authors.all()
        if not follows.filter(key=key).exists():
            if (count := follows.count()) >= app_settings.READER_MAX_FOLLOWED_AUTHORS:
                raise LimitReached("follow_author", f"You follow {count} authors, the most we keep. Remove one to follow another.")
            FollowedAuthor.objects.create(subscriber=subscriber, name=follow_author)
            changes["followed_authors"] = {"added": [follow_author]}
    if seed_paper:
        seeds = subscriber.seed_papers.all()
        if not seeds.filter(arxiv_id=seed_paper).exists():
            if (count := seeds.count()) >= app_settings.READER_MAX_SEED_PAPERS:
                raise LimitReached("seed_paper", f"You have {count} seed papers, the most we keep. Remove one to add another.")
            SeedPaper.objects.create(subscriber=subscriber, arxiv_id=seed_paper, paper=seed_papers.stored_paper(seed_paper))
            changes["seed_papers"] = {"added": [seed_paper]}
    for name, value in (("interests", interests), ("outside_topics", outside_topics)):
        if getattr(subscriber, name) != value:
            changes[name] = {"from": getattr(subscriber, name), "to": value}
            setattr(subscriber, name, value)
    if "interests" in changes or "outside_topics" in changes:
        subscriber.save(update_fields=["interests", "outside_topics", "updated_at"])
    return _told_us(subscriber, origin, changes)


@transaction.atomic
def unfollow(subscriber: Subscriber, author_id, origin: Origin) -> str | None:
    """Stop following one author; their name, or None if the reader did not follow them."""
    subscriber = _locked(subscriber)
    follow = subscriber.followed_authors.filter(pk=author_id).first() if _is_id(author_id) else None
    if follow is None:
        return None
    follow.delete()
    _told_us(subscriber, origin, {"followed_authors": {"removed": [follow.name]}})
    return follow.name


@transaction.atomic
def remove_seed(subscriber: Subscriber, seed_id, origin: Origin) -> str | None:
    """Forget one seed paper; its arXiv id, or None if the reader had no such seed."""
    subscriber = _locked(subscriber)
    seed = subscriber.seed_papers.filter(pk=seed_id).first() if _is_id(seed_id) else None
    if seed is None:
        return None
    seed.delete()
    _told_us(subscriber, origin, {"seed_papers": {"removed": [seed.arxiv_id]}})
    return seed.arxiv_id


@transaction.atomic
def unlike(subscriber: Subscriber, paper_id, origin: Origin) -> Paper | None:
    """Take back a "More like this" (the vote is deleted, as the digest's undo does); the
    paper, or None if the reader had not liked it. "Less like this" votes are not touched."""
    subscriber = _locked(subscriber)
    vote = (subscriber.votes.filter(paper_id=paper_id, value=Vote.MORE).select_related("paper").first()
            if _is_id(paper_id) else None)
    if vote is None:
        return None
    vote.delete()
    _told_us(subscriber, origin, {"liked_papers": {"removed": [vote.paper.arxiv_id]}})
    return vote.paper


def _is_id(value) -> bool:
    return isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 18


# --- what the page shows -------------------------------------------------------------------

@dataclass
class PaperLink:
    arxiv_id: str
    title: str
    url: str


@dataclass
class Followed:
    pk: int
    name: str
    papers_found: int
    newest: list[PaperLink] = field(default_factory=list)


@dataclass
class Seed:
    pk: int
    arxiv_id: str
    paper: PaperLink | None


@dataclass
class Liked:
    paper_id: int
    paper: PaperLink
    liked_at: object


@dataclass
class Overview:
    liked: list[Liked]
    likes_total: int
    followed: list[Followed]
    seeds: list[Seed]
    max_followed: int
    max_seeds: int


def _links(papers) -> dict[int, PaperLink]:
    """paper id -> a link to the paper's page at the source that listed it (one query)."""
    papers = list(papers)
    sources = Paper.objects.sources_of(p.pk for p in papers)
    return {p.pk: PaperLink(p.arxiv_id, p.title, sources[p.pk].paper_url(p.arxiv_id)) for p in papers}


def overview(subscriber: Subscriber) -> Overview:
    """Everything the "What you want to read" part of the page lists, in a few queries."""
    likes = subscriber.votes.filter(value=Vote.MORE)
    liked = list(likes.select_related("paper").order_by("-updated_at", "-pk")[:LIKES_SHOWN])
    follows = list(subscriber.followed_authors.order_by("name", "pk"))
    seeds = list(subscriber.seed_papers.select_related("paper"))
    matches = papers_by(f.key for f in follows)
    newest_ids = {pk for f in follows for pk in matches.get(f.key, [])[:AUTHOR_PAPERS_SHOWN]}
    links = _links([
        *(v.paper for v in liked),
        *(s.paper for s in seeds if s.paper),
        *Paper.objects.filter(pk__in=newest_ids).only("pk", "arxiv_id", "title"),
    ])
    return Overview(
        liked=[Liked(v.paper_id, links[v.paper_id], v.updated_at) for v in liked],
        likes_total=likes.count() if len(liked) == LIKES_SHOWN else len(liked),
        followed=[
            Followed(f.pk, f.name, len(matches.get(f.key, [])),
                     [links[pk] for pk in matches.get(f.key, [])[:AUTHOR_PAPERS_SHOWN] if pk in links])
            for f in follows
        ],
        seeds=[Seed(s.pk, s.arxiv_id, links.get(s.paper_id)) for s in seeds],
        max_followed=app_settings.READER_MAX_FOLLOWED_AUTHORS,
        max_seeds=app_settings.READER_MAX_SEED_PAPERS,
    )
