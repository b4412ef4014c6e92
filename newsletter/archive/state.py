"""What every archive page and feed depends on, read in three small queries per request: the
newest good scrape, the newest topic assignment and the active topics.

Pages change only when one of these does: a scrape succeeds (new day, new papers, fields
updated), papers are assigned to topics again (every assignment writes new PaperTopicScore
rows, so the highest id moves) or an operator edits a topic. Their fingerprint keys the page
cache and makes the ETag, so nothing is ever invalidated by hand; an edit the fingerprint
does not see (a paper changed in the admin) shows once ARCHIVE_CACHE_SECONDS have passed."""

import hashlib
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Max
from django.http import Http404

from newsletter.models import PaperTopicScore, ScrapeRun


@dataclass(frozen=True)
class TopicRow:
    pk: int
    slug: str
    name: str
    description: str


@dataclass(frozen=True)
class ArchiveState:
    # The newest good scrape: its id, when it started (its day) and finished.
    run_id: int | None
    run_started: datetime | None
    run_finished: datetime | None
    newest_score_id: int | None
    topics: tuple[TopicRow, ...]

    @classmethod
    def current(cls) -> "ArchiveState":
        from subscriptions.models import Topic

        run = (
            ScrapeRun.objects.filter(status=ScrapeRun.Status.OK)
            .order_by("-started_at", "-pk")
            .values_list("pk", "started_at", "finished_at")
            .first()
        )
        newest_score_id = PaperTopicScore.objects.aggregate(newest=Max("pk"))["newest"]
        topics = tuple(
            TopicRow(*row)
            for row in Topic.objects.filter(active=True)
            .order_by("display_order", "name", "pk")
            .values_list("pk", "slug", "name", "description")
        )
        return cls(*(run or (None, None, None)), newest_score_id, topics)

    @property
    def fingerprint(self) -> str:
        parts = (self.run_id, self.last_modified and self.last_modified.isoformat(), self.newest_score_id, self.topics)
        return hashlib.blake2b(repr(parts).encode(), digest_size=12).hexdigest()

    @property
    def last_modified(self) -> datetime | None:
        """When the newest good scrape finished. (A topic edit changes the ETag, not this.)"""
        return self.run_finished or self.run_started

    @property
    def topic_ids(self) -> list[int]:
        return [topic.pk for topic in self.topics]

    @property
    def topics_by_id(self) -> dict[int, TopicRow]:
        return {topic.pk: topic for topic in self.topics}

    def topic(self, slug: str) -> TopicRow:
        """The active topic `slug`; 404 for an unknown or inactive one."""
        for topic in self.topics:
            if topic.slug == slug:
                return topic
        raise Http404("No such topic.")


def state_of(request) -> ArchiveState:
    """The state read once for this request (by the page decorator), or now."""
    state = getattr(request, "archive_state", None)
    if state is None:
        state = request.archive_state = ArchiveState.current()
    return state
