"""Where a digest's papers stood on the trending page, and how that changed since yesterday.

A daily digest shows each paper's rank on the scrape its papers come from, and the change
against the newest good scrape of the same page from the day before (at least
YESTERDAY_GAP earlier, so several scrapes a day still compare with yesterday). A paper that
was not on yesterday's page is new there; with no scrape of yesterday, the change is unknown
and nothing is claimed. A weekly digest shows each paper's best rank of the week.
Two queries per pool, cached with it (selection.PaperPool).
"""

from dataclasses import dataclass
from datetime import timedelta

from django.db.models import Min

from newsletter.models import PaperRank, ScrapeRun

YESTERDAY_GAP = timedelta(hours=20)


@dataclass(frozen=True)
class TrendingRank:
    rank: int
    # Places gained since yesterday (negative: lost); None when unknown or `new`.
    change: int | None = None
    new: bool = False  # not on yesterday's page (only said when yesterday's page is known)
    best_of_week: bool = False

    @property
    def label(self) -> str:
        """ "#3 trending", "#3 trending · up 2 since yesterday", "#1 this week at best"..."""
        if self.best_of_week:
            return f"#{self.rank} at best this week"
        text = f"#{self.rank} trending"
        if self.new:
            return f"{text} · new today"
        if self.change:
            return f"{text} · {'up' if self.change > 0 else 'down'} {abs(self.change)} since yesterday"
        if self.change == 0:
            return f"{text} · same as yesterday"
        return text


def daily_ranks(run: ScrapeRun) -> dict[int, TrendingRank]:
    """paper id -> its rank on `run` and the change since the day before."""
    today = dict(PaperRank.objects.filter(run=run).values_list("paper_id", "rank"))
    yesterday_run = (
        ScrapeRun.objects.good(kind=run.kind)
        .filter(status=ScrapeRun.Status.OK, started_at__lte=run.started_at - YESTERDAY_GAP)
        .order_by("-started_at", "-pk")
        .only("pk")
        .first()
    )
    if yesterday_run is None:
        return {pk: TrendingRank(rank) for pk, rank in today.items()}
    before = dict(PaperRank.objects.filter(run=yesterday_run, paper_id__in=list(today)).values_list("paper_id", "rank"))
    return {
        pk: TrendingRank(rank, change=before[pk] - rank) if pk in before else TrendingRank(rank, new=True)
        for pk, rank in today.items()
    }


def best_ranks(run_ids) -> dict[int, TrendingRank]:
    """paper id -> its best rank over the runs (a weekly digest's week)."""
    rows = PaperRank.objects.filter(run_id__in=list(run_ids)).values("paper_id").annotate(best=Min("rank"))
    return {row["paper_id"]: TrendingRank(row["best"], best_of_week=True) for row in rows}
