"""Choosing papers, in one place: which papers, in which order, for this reader on this date.

Sending (chunks), the dry run (dispatch) and the staff preview (preview) all describe their
readers as `Reader`s and ask `choose()`; the order comes from the ranking hook (ranking.py,
DIGEST_RANKING).

Papers come only from a good scrape: the newest finished scrape run must not have failed, and
must be recent. A daily digest picks from the papers of the newest successful run (a 304 "not
modified" run stands for the data of the successful run before it); a weekly digest picks
from every paper ranked by a successful run of the last seven days. Within that pool a reader
gets the papers the topic model put in their topics and that they were never sent, best
first, up to their papers per email.

A pool is loaded with a handful of queries and kept per process for as long as the runs it
was built from are the newest, and readers who would get the same choice share it, so a
chunk of a thousand readers costs no per-reader query here.
"""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from newsletter.models import Delivery, DigestItem, Paper, PaperRank, PaperTopicScore, ScrapeRun
from subscriptions.models import Subscriber, Topic

from . import trending
from .ranking import get_ranking

WEEK = timedelta(days=7)


class NoGoodScrape(Exception):
    """No digest may be built now: the newest scrape failed, is too old, or there is none."""


@dataclass(frozen=True)
class Reader:
    """Whom a digest is for, as far as choosing its papers goes."""

    subscriber_id: int
    kind: str  # Delivery.Kind: daily or weekly
    digest_date: date  # the reader's local date the digest is for
    topic_ids: tuple[int, ...]
    papers_per_email: int


@dataclass(frozen=True)
class TopicReason:
    """One topic a paper belongs to and the evidence for it (raw, as stored: scraped-derived,
    so the renderer cleans it): the topic's phrases found in the paper, then the classifier's
    strongest words (topic_assignment.why)."""

    topic_id: int
    name: str
    evidence: tuple[str, ...]


class Choice(tuple):
    """One reader's papers, best first (a tuple of paper ids, so it compares and hashes like
    one), with `notes`: paper id -> the ranking's personal reason for it ("because you liked
    X", "follows: Y", "outside your topics"), raw text the renderer cleans. Readers whose
    papers and notes are equal share a rendering."""

    notes: dict

    def __new__(cls, paper_ids=(), notes=None):
        choice = super().__new__(cls, paper_ids)
        choice.notes = dict(notes or {})
        return choice

    @property
    def notes_key(self) -> tuple:
        return tuple(sorted(self.notes.items()))


def shown_reasons(pool: "PaperPool", paper_id: int, topic_ids) -> tuple["TopicReason", ...]:
    """The paper's topics among the reader's `topic_ids` (all of them if None), best first."""
    reasons = pool.reasons.get(paper_id, ())
    if topic_ids is None:
        return tuple(reasons)
    wanted = set(topic_ids)
    return tuple(r for r in reasons if r.topic_id in wanted)


@dataclass
class PaperPool:
    kind: str
    # What the pool was built from; a different key means a newer scrape arrived.
    key: tuple
    # paper id -> upvotes
    upvotes: dict[int, int]
    # topic id -> [(paper id, score)], best first
    by_topic: dict[int, list[tuple[int, float]]]
    # paper id -> names of the topics it matches, best score first (emails show `reasons`)
    topic_names: dict[int, list[str]]
    # paper id -> the paper source that links to its page (newsletter.sources)
    sources: dict[int, object] = field(default_factory=dict)
    # paper id -> [TopicReason] of every topic it matches, best first (primary, score, the
    # topics' display order). A digest shows those of its reader's topics ("why" it is there).
    reasons: dict[int, list["TopicReason"]] = field(default_factory=dict)
    # paper id -> where it stood on the trending page (trending.TrendingRank); none for a pool
    # of given papers (an older digest shown again)
    ranks: dict[int, "trending.TrendingRank"] = field(default_factory=dict)
    # Choices already made from this pool, shared by readers who get the same one.
    _chosen: dict = field(default_factory=dict, repr=False)

    @property
    def paper_ids(self) -> set[int]:
        return set(self.upvotes)

    def relevance(self, topic_ids, already_sent) -> dict[int, float]:
        """Candidate paper id -> its best score among `topic_ids`, leaving out `already_sent`."""
        found: dict[int, float] = {}
        for topic_id in topic_ids:
            for paper_id, score in self.by_topic.get(topic_id, ()):
                if paper_id not in already_sent and score > found.get(paper_id, 0.0):
                    found[paper_id] = score
        return found


def choose(readers, pools: dict[str, PaperPool], history: bool = True) -> list[Choice]:
    """The papers of each reader's digest, best first, in the readers' order; () when nothing
    new matches (or there is no pool for the reader's kind). With `history=False` what each
    reader was sent before is ignored."""
    ranking = get_ranking()
    if history:
        candidates = set().union(*(pools[kind].paper_ids for kind in {r.kind for r in readers} if kind in pools))
        sent = already_sent({r.subscriber_id for r in readers}, candidates)
    else:
        sent = {}
    ranking.prepare(readers, sent)
    nothing = frozenset()
    chosen = []
    for reader in readers:
        pool = pools.get(reader.kind)
        if pool is None:
            chosen.append(Choice())
            continue
        seen = frozenset(sent.get(reader.subscriber_id, nothing))
        # A personal choice is never kept: what the reader tells us next may change it.
        key = None if ranking.personal else (ranking, tuple(reader.topic_ids), seen, reader.papers_per_email)
        papers = pool._chosen.get(key) if key else None
        if papers is None:
            ordered = tuple(ranking.order(reader, pool.relevance(reader.topic_ids, seen), pool)[: reader.papers_per_email])
            papers = Choice(ordered, ranking.notes(reader, ordered, pool))
            if key and len(pool._chosen) < 50_000:
                pool._chosen[key] = papers
        chosen.append(papers)
    return chosen


def topics_of(subscriber_ids) -> dict[int, tuple[tuple[int, ...], tuple[str, ...]]]:
    """subscriber id -> (topic ids, topic names), in the topics' display order (one query)."""
    found: dict[int, tuple[list, list]] = defaultdict(lambda: ([], []))
    rows = (
        Subscriber.topics.through.objects.filter(subscriber_id__in=list(subscriber_ids))
        .order_by("topic__display_order", "topic__name")
        .values_list("subscriber_id", "topic_id", "topic__name")
    )
    for sid, topic_id, name in rows:
        found[sid][0].append(topic_id)
        found[sid][1].append(name)
    return {sid: (tuple(ids), tuple(names)) for sid, (ids, names) in found.items()}


def already_sent(subscriber_ids, paper_ids) -> dict[int, set[int]]:
    """subscriber id -> the papers among `paper_ids` that were sent to them before (one query)."""
    sent: dict[int, set[int]] = {}
    rows = DigestItem.objects.filter(
        paper_id__in=list(paper_ids),
        content__deliveries__subscriber_id__in=list(subscriber_ids),
        content__deliveries__status=Delivery.Status.SENT,
    ).values_list("content__deliveries__subscriber_id", "paper_id")
    for subscriber_id, paper_id in rows:
        sent.setdefault(subscriber_id, set()).add(paper_id)
    return sent


# --- pools --------------------------------------------------------------------------------


def source_runs(now=None) -> tuple[ScrapeRun, ScrapeRun]:
    """(the newest finished run, which must be good and recent; the successful run whose
    papers it stands for). Raises NoGoodScrape."""
    now = now or timezone.now()
    newest = (
        ScrapeRun.objects.exclude(status=ScrapeRun.Status.RUNNING)
        .only("id", "kind", "status", "started_at", "finished_at")
        .order_by("-started_at", "-pk")
        .first()
    )
    if newest is None:
        raise NoGoodScrape("no scrape has run yet")
    if newest.status == ScrapeRun.Status.FAILED:
        raise NoGoodScrape(f"the newest scrape (run {newest.pk}) failed")
    finished = newest.finished_at or newest.started_at
    if finished < now - timedelta(hours=settings.DIGEST_MAX_SCRAPE_AGE_HOURS):
        raise NoGoodScrape(f"the newest good scrape (run {newest.pk}) is older than {settings.DIGEST_MAX_SCRAPE_AGE_HOURS} h")
    if newest.status == ScrapeRun.Status.OK:
        return newest, newest
    data_run = (
        ScrapeRun.objects.filter(status=ScrapeRun.Status.OK, started_at__lte=newest.started_at)
        .only("id", "kind", "started_at")
        .order_by("-started_at", "-pk")
        .first()
    )
    if data_run is None:
        raise NoGoodScrape("no successful scrape has stored papers yet")
    return newest, data_run


_POOLS: dict[str, PaperPool] = {}


def paper_pool(kind: str, now=None) -> PaperPool:
    """The pool for daily or weekly digests now (cached while no newer run arrived)."""
    now = now or timezone.now()
    newest, data_run = source_runs(now)
    if kind == Delivery.Kind.WEEKLY:
        runs = ScrapeRun.objects.filter(
            Q(pk=data_run.pk) | Q(status=ScrapeRun.Status.OK, started_at__gte=now - WEEK, started_at__lte=newest.started_at)
        )
        run_ids = tuple(sorted(runs.values_list("pk", flat=True)))
    else:
        run_ids = (data_run.pk,)
    key = (kind, run_ids)
    pool = _POOLS.get(kind)
    if pool is None or pool.key != key:
        paper_ids = PaperRank.objects.filter(run_id__in=run_ids).values("paper_id")
        ranks = trending.best_ranks(run_ids) if kind == Delivery.Kind.WEEKLY else trending.daily_ranks(data_run)
        pool = _POOLS[kind] = _build_pool(kind, key, paper_ids, ranks)
    return pool


def pools_for(kinds, now=None) -> tuple[dict[str, PaperPool], dict[str, str]]:
    """(kind -> its pool, kind -> why it has none now) for each of `kinds`."""
    pools, waiting = {}, {}
    for kind in kinds:
        try:
            pools[kind] = paper_pool(kind, now)
        except NoGoodScrape as exc:
            waiting[kind] = str(exc)
    return pools, waiting


def pool_for_papers(kind: str, paper_ids) -> PaperPool:
    """A pool of exactly these papers (to show a digest sent from an older scrape)."""
    paper_ids = tuple(paper_ids)
    return _build_pool(kind, ("papers", paper_ids), paper_ids)


def _build_pool(kind: str, key: tuple, paper_ids, ranks=None) -> PaperPool:
    upvotes = dict(Paper.objects.filter(pk__in=paper_ids).values_list("pk", "upvotes"))
    topics = {pk: (name, order) for pk, name, order in Topic.objects.values_list("pk", "name", "display_order")}
    by_topic: dict[int, list[tuple[int, float]]] = {}
    topic_names: dict[int, list[str]] = {pk: [] for pk in upvotes}
    found: dict[int, list[tuple]] = {pk: [] for pk in upvotes}
    # A row means the topic model put the paper in that topic (its own threshold decides).
    scores = (
        PaperTopicScore.objects.filter(paper_id__in=list(upvotes))
        .order_by("paper_id", "-score", "topic_id")
        .values_list("topic_id", "paper_id", "score", "primary", "matched", "evidence")
    )
    for topic_id, paper_id, score, primary, matched, evidence in scores:
        by_topic.setdefault(topic_id, []).append((paper_id, score))
        name, order = topics[topic_id]
        topic_names[paper_id].append(name)
        terms = evidence.get("terms", []) if isinstance(evidence, dict) else []
        phrases = tuple(p for p in [*(matched if isinstance(matched, list) else []), *(terms if isinstance(terms, list) else [])]
                        if isinstance(p, str))
        found[paper_id].append((not primary, -score, order, TopicReason(topic_id, name, phrases)))
    # The same order as topic_assignment.reasons_for: primary first, then score, then display order.
    reasons = {pk: [row[-1] for row in sorted(rows, key=lambda row: row[:3])] for pk, rows in found.items()}
    return PaperPool(kind=kind, key=key, upvotes=upvotes, by_topic=by_topic, topic_names=topic_names,
                     sources=Paper.objects.sources_of(upvotes), reasons=reasons, ranks=ranks or {})
