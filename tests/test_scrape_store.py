"""Storing: idempotent upserts, rank history, "last good scrape" helpers for the digests, and
the `scrape_papers` command (output, exit status)."""

import json
import subprocess
import sys

import pytest
from django.core.management import CommandError, call_command
from hypothesis import HealthCheck, given, settings as hyp_settings, strategies as st

from newsletter import locks, sources
from newsletter.models import Paper, PaperRank, ScrapeRun
from newsletter.scraping import ScrapeError, store
from newsletter.scraping.run import scrape_file
from newsletter.sources.huggingface import parse
from newsletter.tasks.scrape import LOCK_NAME

from .conftest import ROOT, worker_env
from .support.hf_server import API_FILES, FIXTURES, SAMPLE_PAGE, Reply, fixture_items
from .test_scrape_parse import PAPER_FIELDS, SAMPLE_ITEMS, expected, json_values

pytestmark = pytest.mark.django_db


def test_same_page_twice_creates_nothing_new(settings):
    first = scrape_file(SAMPLE_PAGE)
    second = scrape_file(SAMPLE_PAGE)
    assert (first.status, second.status) == ("ok", "ok")
    assert (first.papers_found, first.papers_new, first.papers_updated) == (17, 17, 0)
    assert (second.papers_found, second.papers_new, second.papers_updated) == (17, 0, 0)
    assert Paper.objects.count() == 17
    assert PaperRank.objects.filter(run=second).count() == 17
    seen = Paper.objects.get(arxiv_id="2608.19880")
    assert seen.last_seen_at >= second.started_at > seen.first_seen_at


def test_changed_counts_are_updated_and_ranked(tmp_path):
    scrape_file(FIXTURES / SAMPLE_ITEMS)
    items = fixture_items(SAMPLE_ITEMS)
    items[0]["paper"]["upvotes"] += 100
    items[1]["numComments"] = 99
    items[0], items[1] = items[1], items[0]
    changed = tmp_path / "next_day.json"
    changed.write_text(json.dumps(items))
    run = scrape_file(changed)
    assert (run.papers_new, run.papers_updated) == (0, 2)
    assert Paper.objects.get(arxiv_id="2608.19880").upvotes == 263
    assert Paper.objects.get(arxiv_id="2608.18580").num_comments == 99
    assert [(r.paper.arxiv_id, r.rank, r.upvotes) for r in run.ranks.select_related("paper")[:2]] == [
        ("2608.18580", 1, 54),
        ("2608.19880", 2, 263),
    ]
    # The history of each run is kept.
    assert list(PaperRank.objects.filter(paper__arxiv_id="2608.19880").order_by("run_id").values_list("rank", "upvotes")) == [(1, 163), (2, 263)]


def test_all_fixtures_together():
    for path in API_FILES:
        assert scrape_file(path).status == "ok"
    total = sum(len(fixture_items(p)) for p in API_FILES)
    assert Paper.objects.count() == total == 110
    for path in API_FILES:
        source = expected(fixture_items(path))
        papers = {p.arxiv_id: p for p in Paper.objects.filter(arxiv_id__in=[s[0] for s in source])}
        assert [(i, papers[i].title, papers[i].authors, papers[i].upvotes) for i, *_ in source] == source


@hyp_settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(PAPER_FIELDS), json_values), min_size=1, max_size=6))
def test_whatever_the_parser_accepts_can_be_stored(mutations):
    """Mutated real items either fail as ScrapeError or are stored: no database error."""
    items = fixture_items(SAMPLE_ITEMS)[:2]
    for field_name, value in mutations:
        items[0]["paper"][field_name] = value
    try:
        result = parse(json.dumps(items), "application/json")
    except ScrapeError:
        return
    run = ScrapeRun.objects.create(source="property", kind=sources.FILE_KIND)
    store.store_papers(run, result)
    assert run.papers_found == len(result.papers) == run.ranks.count()


def test_last_good_scrape_helpers_skip_failed_runs(tmp_path):
    assert store.latest_successful_run() is None
    assert list(Paper.objects.from_last_good_scrape()) == []
    good = scrape_file(SAMPLE_PAGE)
    empty = tmp_path / "empty.html"
    empty.write_text("<html><body>Just a moment...</body></html>")
    failed = scrape_file(empty)
    assert failed.status == ScrapeRun.Status.FAILED
    ScrapeRun.objects.create(source="running", status=ScrapeRun.Status.RUNNING)
    assert store.latest_successful_run() == good
    assert store.latest_successful_run(kind="trending") is None
    assert [p.arxiv_id for p in store.papers_from_last_good_scrape()] == [i["paper"]["id"] for i in fixture_items(SAMPLE_ITEMS)]
    assert Paper.objects.count() == 17


def test_command_prints_found_new_updated():
    out = call_and_capture("scrape_papers", "--file", str(SAMPLE_PAGE))
    assert "Found 17 papers (props): 17 new, 0 updated, 0 skipped." in out
    out = call_and_capture("scrape_papers", "--file", str(SAMPLE_PAGE))
    assert "Found 17 papers (props): 0 new, 0 updated, 0 skipped." in out


def test_command_with_url(scrape_settings, hf_server):
    hf_server.route("/papers/date/2026-08-21", Reply.html(SAMPLE_PAGE.read_bytes()))
    out = call_and_capture("scrape_papers", "--url", hf_server.url("/papers/date/2026-08-21"))
    assert "Found 17 papers (props): 17 new" in out
    assert ScrapeRun.objects.get().kind == "daily"


def test_command_reports_skipped_records():
    out = call_and_capture("scrape_papers", "--file", str(FIXTURES / "api_daily_papers_hostile.json"))
    assert "Found 2 papers (api): 2 new, 0 updated, 3 skipped." in out


def test_command_fails_on_scrape_error(tmp_path):
    page = tmp_path / "challenge.html"
    page.write_text("<html><body>Checking your browser</body></html>")
    with pytest.raises(CommandError, match=r"Scrape failed \(run \d+\): no valid paper"):
        call_command("scrape_papers", "--file", str(page))
    with pytest.raises(CommandError, match="No such file"):
        call_command("scrape_papers", "--file", str(tmp_path / "missing.json"))


def test_command_refuses_while_another_scrape_runs():
    with locks.exclusive(LOCK_NAME, 60) as acquired:
        assert acquired
        with pytest.raises(CommandError, match="Another scrape is running"):
            call_command("scrape_papers", "--file", str(SAMPLE_PAGE))
    assert not ScrapeRun.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_command_exit_status_in_a_real_process(tmp_path, topics):
    def run(*args):
        return subprocess.run(
            [sys.executable, "manage.py", "scrape_papers", *args],
            cwd=ROOT, env=worker_env(), capture_output=True, text=True, timeout=120,
        )

    ok = run("--file", str(SAMPLE_PAGE))
    assert ok.returncode == 0, ok.stderr
    assert "Found 17 papers" in ok.stdout
    bad = tmp_path / "bad.json"
    bad.write_text('[{"paper": {"id": "2608.1')
    failed = run("--file", str(bad))
    assert failed.returncode == 1
    assert "Scrape failed" in failed.stderr and "not valid JSON" in failed.stderr
    assert Paper.objects.count() == 17


def call_and_capture(*args) -> str:
    import io

    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue()
