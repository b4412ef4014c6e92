"""Which papers a digest holds.

Papers come only from a good scrape: the newest finished scrape run must not have failed, and
must be recent. A daily digest picks from the papers of the newest successful run (a 304 "not
modified" run stands for the data of the successful run before it); a weekly digest picks
from every paper ranked by a successful run of the last seven days. Within that pool a
subscriber gets the papers that match their topics and that they were never sent, ranked by
topic score and upvotes, up to their papers-per-email.

A pool is loaded with a handful of queries and kept per process for as long as the runs it
was built from are the newest, so a chunk of a thousand subscribers costs no per-subscriber
query here.
"""

import math
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from newsletter.models import Delivery, Paper, PaperRank, PaperTopicScore, ScrapeRun
from subscriptions.models import Topic

WEEK = timedelta(days=7)


class NoGoodScrape(Exception):
    """No digest may be built now: the newest scrape failed, is too old, or there is none."""


@dataclass
class PaperPool:
    kind: str
    # What the pool was built from; a different key means a newer scrape arrived.
    key: tuple
    # paper id -> upvotes
    upvotes: dict[int, int]
    # topic id -> [(paper id, score)] for the scores that reach the threshold
    by_topic: dict[int, list[tuple[int, float]]]
    # paper id -> names of the topics it matches, best first (shown in the email)
    topic_names: dict[int, list[str]]
    _memo: dict = field(default_factory=dict, repr=False)

    @property
    def paper_ids(self) -> set[int]:
        return set(self.upvotes)

    def choose(self, topic_ids, already_sent, limit: int) -> list[int]:
        """The subscriber's digest: matching papers not sent before, best first."""
        memo_key = (tuple(topic_ids), frozenset(already_sent), limit)
        chosen = self._memo.get(memo_key)
        if chosen is None:
            relevance: dict[int, float] = {}
            for topic_id in topic_ids:
                for paper_id, score in self.by_topic.get(topic_id, ()):
                    if paper_id not in already_sent and score > relevance.get(paper_id, 0.0):
                        relevance[paper_id] = score
            chosen = sorted(relevance, key=lambda pk: self._rank_key(pk, relevance[pk]))[:limit]
            if len(self._memo) < 50_000:
                self._memo[memo_key] = chosen
        return chosen

    def _rank_key(self, paper_id: int, relevance: float):
        # Topic score weighted by how much the community cares (log of upvotes), so a strong
        # match with few votes and a weak match with many both have a chance.
        upvotes = self.upvotes[paper_id]
        return (-relevance * math.log2(2 + upvotes), -upvotes, paper_id)


def source_runs(now=None) -> tuple[ScrapeRun, ScrapeRun]:
    """(the newest finished run, which must be good and recent; the successful run whose
    papers it stands for). Raises NoGoodScrape."""
    now = now or timezone.now()
    newest = (
        ScrapeRun.objects.exclude(status=ScrapeRun.Status.RUNNING)
        .only("id", "status", "started_at", "finished_at")
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
        .only("id", "started_at")
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
    key = (kind, run_ids, settings.DIGEST_MIN_TOPIC_SCORE)
    pool = _POOLS.get(kind)
    if pool is None or pool.key != key:
        pool = _POOLS[kind] = _load_pool(kind, key, run_ids)
    return pool


def _load_pool(kind: str, key: tuple, run_ids) -> PaperPool:
    paper_ids = PaperRank.objects.filter(run_id__in=run_ids).values("paper_id")
    upvotes = dict(Paper.objects.filter(pk__in=paper_ids).values_list("pk", "upvotes"))
    by_topic: dict[int, list[tuple[int, float]]] = {}
    topic_names: dict[int, list[str]] = {pk: [] for pk in upvotes}
    names = dict(Topic.objects.values_list("pk", "name"))
    scores = (
        PaperTopicScore.objects.filter(paper_id__in=list(upvotes), score__gte=settings.DIGEST_MIN_TOPIC_SCORE)
        .order_by("paper_id", "-score", "topic_id")
        .values_list("topic_id", "paper_id", "score")
    )
    for topic_id, paper_id, score in scores:
        by_topic.setdefault(topic_id, []).append((paper_id, score))
        topic_names[paper_id].append(names[topic_id])
    return PaperPool(kind=kind, key=key, upvotes=upvotes, by_topic=by_topic, topic_names=topic_names)


def already_sent(subscriber_ids, paper_ids) -> dict[int, set[int]]:
    """subscriber id -> the papers among `paper_ids` that were sent to them before (one query)."""
    from newsletter.models import DigestItem

    sent: dict[int, set[int]] = {}
    rows = DigestItem.objects.filter(
        paper_id__in=list(paper_ids),
        content__deliveries__subscriber_id__in=list(subscriber_ids),
        content__deliveries__status=Delivery.Status.SENT,
    ).values_list("content__deliveries__subscriber_id", "paper_id")
    for subscriber_id, paper_id in rows:
        sent.setdefault(subscriber_id, set()).add(paper_id)
    return sent


def pool_for_papers(kind: str, paper_ids) -> PaperPool:
    """A pool of exactly these papers (to show a digest sent from an older scrape)."""
    paper_ids = tuple(paper_ids)
    upvotes = dict(Paper.objects.filter(pk__in=paper_ids).values_list("pk", "upvotes"))
    names = dict(Topic.objects.values_list("pk", "name"))
    topic_names: dict[int, list[str]] = {pk: [] for pk in upvotes}
    by_topic: dict[int, list[tuple[int, float]]] = {}
    scores = (
        PaperTopicScore.objects.filter(paper_id__in=paper_ids, score__gte=settings.DIGEST_MIN_TOPIC_SCORE)
        .order_by("paper_id", "-score", "topic_id")
        .values_list("topic_id", "paper_id", "score")
    )
    for topic_id, paper_id, score in scores:
        by_topic.setdefault(topic_id, []).append((paper_id, score))
        topic_names[paper_id].append(names[topic_id])
    return PaperPool(kind=kind, key=("papers", paper_ids), upvotes=upvotes, by_topic=by_topic, topic_names=topic_names)
