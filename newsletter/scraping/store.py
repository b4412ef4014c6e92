"""Keeping what a scrape found: idempotent upserts of papers keyed by arXiv id, each paper's
rank on the run (trending history), and the guard that refuses a list far shorter than the
last good scrape of the same kind (a page fetched before it was complete)."""

import math

from django.conf import settings
from django.db import transaction
from django.utils.timezone import now

from newsletter import seed_papers, sources
from newsletter.logs import EventLog
from newsletter.models import Paper, PaperRank, ScrapeRun

from .errors import ScrapeError
from .parse import ParseResult

log = EventLog(__name__)


def latest_successful_run(kind: str | None = None) -> ScrapeRun | None:
    """The newest run whose papers may be used (status OK or 304 "not modified"), optionally
    of one page kind (newsletter.sources). Never a failed or running one."""
    return ScrapeRun.objects.last_good(kind=kind)


def papers_from_last_good_scrape(kind: str | None = None):
    """Papers of latest_successful_run(), in page order; empty queryset if there is none."""
    return Paper.objects.from_last_good_scrape(kind=kind)


def check_not_far_fewer(run: ScrapeRun, found: int) -> None:
    """Raise ScrapeError if `found` is far below the last good scrape of the same kind
    (fewer than SCRAPE_MIN_PAPERS_RATIO of it). A file loaded by hand is the operator's
    deliberate choice and is not compared."""
    if run.kind == sources.FILE_KIND:
        return
    previous = (
        ScrapeRun.objects.filter(kind=run.kind, status=ScrapeRun.Status.OK, papers_found__gt=0)
        .exclude(pk=run.pk)
        .order_by("-started_at", "-pk")
        .first()
    )
    if previous is None:
        return
    needed = math.ceil(previous.papers_found * settings.SCRAPE_MIN_PAPERS_RATIO)
    if found < needed:
        raise ScrapeError(
            f"found {found} paper(s), far fewer than the {previous.papers_found} of the last good "
            f"scrape (run {previous.pk} at {previous.started_at:%Y-%m-%d %H:%M}); at least {needed} expected. "
            "The page may be partial or changed; stored papers were kept."
        )


@transaction.atomic
def store_papers(run: ScrapeRun, result: ParseResult) -> list[Paper]:
    """Upsert the papers of `result`, record their ranks on `run` and mark the run OK.
    Only the fields the source told are written, so cards never erase authors or abstracts;
    a paper is counted as updated only if something about it changed."""
    seen_at = now()
    by_id = {scraped.arxiv_id: scraped for scraped in result.papers}
    existing = {p.arxiv_id: p for p in Paper.objects.select_for_update().filter(arxiv_id__in=by_id)}
    new, updated, changed_fields = [], [], set()
    for arxiv_id, scraped in by_id.items():
        paper = existing.get(arxiv_id)
        if paper is None:
            new.append(Paper(arxiv_id=arxiv_id, first_seen_at=seen_at, last_seen_at=seen_at, **scraped.fields))
            continue
        changes = {
            name: value
            for name, value in scraped.fields.items()
            if getattr(paper, name) != value and (name not in scraped.fill_only or _may_fill(paper, name, value))
        }
        for name, value in changes.items():
            setattr(paper, name, value)
        if changes:
            updated.append(paper)
            changed_fields.update(changes)
        paper.last_seen_at = seen_at
    Paper.objects.bulk_create(new)
    if existing:
        Paper.objects.bulk_update(list(existing.values()), sorted(changed_fields | {"last_seen_at"}), batch_size=500)

    papers = {p.arxiv_id: p for p in [*existing.values(), *new]}
    if any(p.pk is None for p in new):  # backends that do not return ids from bulk inserts
        papers = {p.arxiv_id: p for p in Paper.objects.filter(arxiv_id__in=by_id)}
    ordered = [papers[arxiv_id] for arxiv_id in by_id]
    seed_papers.link_stored(by_id)  # readers who named one of these papers before it was stored
    PaperRank.objects.bulk_create(
        PaperRank(run=run, paper=paper, rank=rank, upvotes=paper.upvotes) for rank, paper in enumerate(ordered, start=1)
    )
    run.status = ScrapeRun.Status.OK
    run.parser = result.parser
    run.papers_found = len(ordered)
    run.papers_new = len(new)
    run.papers_updated = len(updated)
    run.records_skipped = result.skipped
    run.error = _skipped_note(result)
    run.finished_at = now()
    run.save()
    log("scrape.stored", run=run.pk, found=len(ordered), new=len(new), updated=len(updated), skipped=result.skipped)
    return ordered


@transaction.atomic
def record_not_modified(run: ScrapeRun, base: ScrapeRun) -> None:
    """A 304: the page is the one `base` read. The run repeats base's ranks so trending
    history has no gap, and the papers count as seen again."""
    ranks = list(base.ranks.select_related("paper"))
    PaperRank.objects.bulk_create(PaperRank(run=run, paper=r.paper, rank=r.rank, upvotes=r.upvotes) for r in ranks)
    Paper.objects.filter(ranks__run=base).update(last_seen_at=now())
    run.status = ScrapeRun.Status.NOT_MODIFIED
    run.parser = base.parser
    run.papers_found = len(ranks)
    run.papers_new = run.papers_updated = run.records_skipped = 0
    run.etag, run.last_modified = base.etag, base.last_modified
    run.finished_at = now()
    run.save()


def _may_fill(paper: Paper, name: str, value) -> bool:
    if getattr(paper, name) not in (None, "", []):
        return False
    # A card shows the abstract's start where a paper has no AI summary: that is no summary.
    return not (name == "ai_summary" and paper.abstract and paper.abstract.startswith(value[:200]))


def _skipped_note(result: ParseResult) -> str:
    if not result.warnings:
        return ""
    return "Not an error; the run succeeded. Warnings:\n" + "\n".join(result.warnings[:50])
