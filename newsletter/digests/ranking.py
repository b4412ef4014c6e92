"""The order of each reader's papers: the ranking hook.

DIGEST_RANKING (newsletter/app_settings.py) is the dotted path of a `Ranking` class.
selection.choose() hands it every reader's candidates, so sending, the dry run and the staff
preview all rank the same way. To rank differently, write a
subclass and point DIGEST_RANKING at it in your settings:

    class ByRecency(Ranking):
        def order(self, reader, relevance, pool):
            return sorted(relevance, key=lambda pk: -pk)

A ranking that depends on who reads (their history, their clicks), not only on their topics,
sets `personal = True`: readers with the same topics then no longer share one choice, and
should load what it needs for all of them at once rather than one query per reader.
"""

import math
from functools import lru_cache

from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from newsletter.app_settings import app_settings


class Ranking:
    # False: the order depends only on the candidates (the reader's topics and what they were
    # sent), so one choice serves every reader with the same topics and papers per email.
    personal = False

    def refresh(self, subscriber_ids) -> None:
        """Called by the sender before it chooses a chunk's digests (not by the dry run or the
        preview, which write nothing): bring what the ranking learned of these readers up to
        date. Nothing by default."""

    def prepare(self, readers, sent) -> None:
        """Called once per choose() with all its readers, before any order(): load what a
        personal ranking needs for all of them at once (one query, not one per reader).
        `sent`: subscriber id -> the pool's papers each was sent before (never candidates)."""

    def notes(self, reader, paper_ids, pool) -> dict[int, str]:
        """paper id -> a short personal reason shown with it ("because you liked X"); none by default."""
        return {}

    def order(self, reader, relevance: dict[int, float], pool) -> list[int]:
        """The candidates, best first (selection keeps the reader's papers-per-email first).

        reader     selection.Reader: subscriber id, kind, digest date, topic ids, papers per email
        relevance  candidate paper id -> its best topic score among the reader's topics (papers
                   sent to the reader before are not candidates)
        pool       selection.PaperPool: the scrape's papers, with `upvotes` and `topic_names`
        """
        raise NotImplementedError


class TopicScoreAndUpvotes(Ranking):
    """Topic score weighted by how much the community cares (log2 of 2 + upvotes), so a strong
    match with few votes and a weak match with many both have a chance; then more upvotes
    first, then the paper id, for an order that never varies."""

    def order(self, reader, relevance, pool):
        def key(paper_id):
            upvotes = pool.upvotes[paper_id]
            return (-relevance[paper_id] * math.log2(2 + upvotes), -upvotes, paper_id)

        return sorted(relevance, key=key)


def get_ranking() -> Ranking:
    """The ranking DIGEST_RANKING names (one instance per process)."""
    return _load(app_settings.DIGEST_RANKING)


@lru_cache(maxsize=4)
def _load(path: str) -> Ranking:
    ranking = import_string(path)()
    if not isinstance(ranking, Ranking):
        raise ImproperlyConfigured(f"DIGEST_RANKING: {path} is not a newsletter.digests.ranking.Ranking.")
    return ranking
