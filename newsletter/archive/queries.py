"""The archive's reads. Only good scrapes count (status OK: a run that stored papers; a 304 only
repeats the run before it, a failed one is never shown). A day is a UTC date (TIME_ZONE) and
shows its newest good scrape. Each function costs a fixed number of queries whatever the
number of papers: topics come prefetched (`archive_scores`), never one query per paper."""

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from django.db.models import Exists, OuterRef, Prefetch
from django.db.models.fields.json import KeyTransform
from django.utils import timezone

from newsletter.models import Paper, PaperRank, PaperTopicScore, ScrapeRun

from .papers import AUTHOR_SLOTS, FIELDS


def good_runs():
    return ScrapeRun.objects.filter(status=ScrapeRun.Status.OK)


@dataclass
class TrendingDay:
    day: date
    run_id: int
    papers: int
    # The titles of the day's first papers (cleaned), filled in for the days shown.
    top: list = field(default_factory=list)


def trending_days() -> list[TrendingDay]:
    """Every day with a good scrape, newest first, each with its newest good run. One query
    (a row per run: a few hundred a year)."""
    days: dict[date, TrendingDay] = {}
    rows = good_runs().order_by("-started_at", "-pk").values_list("pk", "started_at", "papers_found")
    for pk, started_at, found in rows:
        day = timezone.localdate(started_at)
        if day not in days:
            days[day] = TrendingDay(day, pk, found)
    return list(days.values())


def _day_bounds(day: date) -> tuple[datetime, datetime]:
    zone = timezone.get_current_timezone()
    start = datetime.combine(day, time.min, tzinfo=zone)
    return start, datetime.combine(day + timedelta(days=1), time.min, tzinfo=zone)


def run_of_day(day: date) -> ScrapeRun | None:
    """The newest good scrape of `day`, or None."""
    start, end = _day_bounds(day)
    return good_runs().filter(started_at__gte=start, started_at__lt=end).order_by("-started_at", "-pk").first()


def neighbour_days(day: date) -> tuple[date | None, date | None]:
    """The days before and after `day` that have a good scrape (None at either end)."""
    start, end = _day_bounds(day)
    before = good_runs().filter(started_at__lt=start).order_by("-started_at").values_list("started_at", flat=True).first()
    after = good_runs().filter(started_at__gte=end).order_by("started_at").values_list("started_at", flat=True).first()
    return (timezone.localdate(before) if before else None, timezone.localdate(after) if after else None)


def paper_rows():
    """Papers with what the archive shows of them (papers.FIELDS), their first authors as
    `author_0`, `author_1`, ... (one element each, decoded: not the whole list)."""
    slots = {f"author_{n}": KeyTransform(str(n), "authors") for n in range(AUTHOR_SLOTS)}
    return Paper.objects.only(*FIELDS).annotate(**slots)


def with_topics(papers, topic_ids):
    """`papers` with their rows in the active topics prefetched as `archive_scores`, the
    paper's primary topic first, then by score (one query for all of them)."""
    rows = (
        PaperTopicScore.objects.filter(topic_id__in=topic_ids)
        .order_by("-primary", "-score", "topic_id")
        .only("paper_id", "topic_id")
    )
    return papers.prefetch_related(Prefetch("topic_scores", queryset=rows, to_attr="archive_scores"))


def top_titles(run_ids, max_rank: int) -> dict[int, list[str]]:
    """run id -> the raw titles of its first `max_rank` papers, in page order. One query."""
    titles: dict[int, list[str]] = {}
    rows = (
        PaperRank.objects.filter(run_id__in=list(run_ids), rank__lte=max_rank)
        .order_by("run_id", "rank")
        .values_list("run_id", "paper__title")
    )
    for run_id, title in rows:
        titles.setdefault(run_id, []).append(title)
    return titles


def ranked_papers(run_ids, topic_ids, max_rank: int | None = None) -> list[tuple[int, int, int, Paper]]:
    """(run id, rank, upvotes then, paper) of the runs' papers in page order, optionally only
    the first `max_rank` of each. Three queries."""
    ranks = PaperRank.objects.filter(run_id__in=list(run_ids))
    if max_rank is not None:
        ranks = ranks.filter(rank__lte=max_rank)
    ranks = list(ranks.order_by("run_id", "rank").values_list("run_id", "rank", "upvotes", "paper_id"))
    papers = {paper.pk: paper for paper in papers_by_id([paper_id for *_, paper_id in ranks], topic_ids)}
    return [(run_id, rank, upvotes, papers[paper_id]) for run_id, rank, upvotes, paper_id in ranks]


def newest_paper_ids(topic_id: int | None = None):
    """The ids of the stored papers (in `topic_id`, if given), newest first: by when they
    first trended here, then by arXiv id (a stable order for pagination and feeds). Ids only,
    so that a deep page sorts narrow rows; papers_by_id then reads the page's papers.

    Every stored paper was listed by a good scrape: only the scraper stores papers, in the
    transaction that marks its run OK (newsletter/scraping/store.py), so no join with the
    runs is needed here."""
    papers = Paper.objects.all()
    if topic_id is not None:
        papers = papers.filter(Exists(PaperTopicScore.objects.filter(paper=OuterRef("pk"), topic_id=topic_id)))
    return papers.order_by("-first_seen_at", "-arxiv_id").values_list("pk", flat=True)


def papers_by_id(ids, topic_ids) -> list[Paper]:
    """The papers `ids` in that order (paper_rows, topics prefetched): two queries."""
    ids = list(ids)
    found = with_topics(paper_rows(), topic_ids).in_bulk(ids)
    return [found[pk] for pk in ids if pk in found]
