"""The real fetching code against a real HTTP server on 127.0.0.1: 200, 304 with ETag, 429 with
Retry-After, 500 then 200, read timeouts, oversize bodies, robots.txt, the cards fallback, a page
with neither props nor cards, truncated JSON, and each real fixture checked paper by paper."""

import re

import pytest
from django.core import mail

from newsletter.models import Paper, PaperRank, ScrapeRun
from newsletter.scraping import store
from newsletter.scraping.run import scrape_url

from .hf_server import API_FILES, SAMPLE_PAGE, Reply, closed_port_url, fixture_bytes, fixture_items
from .test_scrape_parse import SAMPLE_ITEMS, expected, page_without_cards, page_without_props

pytestmark = pytest.mark.django_db

TRENDING = "/papers/trending"


def stored(arxiv_ids):
    papers = {p.arxiv_id: p for p in Paper.objects.filter(arxiv_id__in=arxiv_ids)}
    return [(i, papers[i].title, papers[i].authors, papers[i].upvotes) for i in arxiv_ids]


def assert_run_matches(run, items):
    """Every paper of the source is stored with its id, title, authors and upvotes, ranked in
    the source's order on this run."""
    source = expected(items)
    ids = [row[0] for row in source]
    assert stored(ids) == source
    assert list(run.ranks.order_by("rank").values_list("paper__arxiv_id", "rank")) == [(i, n) for n, i in enumerate(ids, 1)]
    assert run.papers_found == len(items)


def test_200_sample_page(scrape_settings, hf_server):
    scrape_settings.SCRAPE_USER_AGENT = "TrendingPapersDigest/1.0 (+https://ops.example.org/contact)"
    hf_server.route(TRENDING, Reply.html(fixture_bytes(SAMPLE_PAGE), headers={"ETag": '"v1"'}))
    run = scrape_url()
    assert run.status == ScrapeRun.Status.OK, run.error
    assert (run.http_status, run.parser, run.kind, run.etag) == (200, "props", "trending", '"v1"')
    assert (run.papers_new, run.papers_updated, run.records_skipped) == (17, 0, 0)
    assert_run_matches(run, fixture_items(SAMPLE_ITEMS))

    [page] = hf_server.hits(TRENDING)
    assert page.headers["user-agent"] == "TrendingPapersDigest/1.0 (+https://ops.example.org/contact)"
    assert "if-none-match" not in page.headers
    assert len(hf_server.hits("/robots.txt")) == 1


@pytest.mark.parametrize("path", API_FILES, ids=lambda p: p.name)
def test_each_real_api_file_over_http(scrape_settings, hf_server, path):
    date = re.search(r"\d{4}-\d{2}-\d{2}", path.name).group()
    url_path = f"/api/daily_papers?date={date}"
    hf_server.route(url_path, Reply.json(path.read_bytes()))
    run = scrape_url(hf_server.url(url_path))
    assert run.status == ScrapeRun.Status.OK, run.error
    assert (run.kind, run.parser) == ("api", "api")
    assert_run_matches(run, fixture_items(path))


def test_304_with_etag_means_nothing_new(scrape_settings, hf_server):
    def conditional(request):
        if request.headers.get("if-none-match") == '"v1"':
            return Reply(status=304, headers={"ETag": '"v1"'})
        return Reply.html(fixture_bytes(SAMPLE_PAGE), headers={"ETag": '"v1"', "Last-Modified": "Fri, 21 Aug 2026 05:00:00 GMT"})

    hf_server.route(TRENDING, conditional)
    first = scrape_url()
    second = scrape_url()
    assert first.status == ScrapeRun.Status.OK
    assert second.status == ScrapeRun.Status.NOT_MODIFIED and second.error == ""
    assert second.http_status == 304
    assert (second.papers_found, second.papers_new, second.papers_updated) == (17, 0, 0)
    sent = hf_server.hits(TRENDING)[1].headers
    assert sent["if-none-match"] == '"v1"'
    assert sent["if-modified-since"] == "Fri, 21 Aug 2026 05:00:00 GMT"
    # Trending history has no gap, and the 304 run is a good run to build from.
    assert list(second.ranks.values_list("paper__arxiv_id", flat=True)) == list(first.ranks.values_list("paper__arxiv_id", flat=True))
    assert store.latest_successful_run() == second
    assert Paper.objects.from_last_good_scrape().count() == 17
    assert Paper.objects.count() == 17


def test_304_to_an_unconditional_request_is_an_error(scrape_settings, hf_server):
    hf_server.route(TRENDING, Reply(status=304))
    run = scrape_url()
    assert run.status == ScrapeRun.Status.FAILED
    assert "304 Not Modified to an unconditional request" in run.error


def test_429_with_retry_after_is_honoured(scrape_settings, hf_server):
    hf_server.route(TRENDING, Reply(status=429, headers={"Retry-After": "1"}, body="slow down"), Reply.html(fixture_bytes(SAMPLE_PAGE)))
    run = scrape_url()
    assert run.status == ScrapeRun.Status.OK, run.error
    first, second = hf_server.hits(TRENDING)
    # Backoff alone is 10 ms here: the second second comes from Retry-After.
    assert second.at - first.at >= 0.95


def test_500_then_200_is_retried(scrape_settings, hf_server):
    hf_server.route(TRENDING, Reply(status=500, body="oops"), Reply(status=502), Reply.html(fixture_bytes(SAMPLE_PAGE)))
    run = scrape_url()
    assert run.status == ScrapeRun.Status.OK, run.error
    assert len(hf_server.hits(TRENDING)) == 3
    assert run.papers_found == 17


def load_yesterday(hf_server):
    """A good earlier scrape whose papers must survive every failure."""
    hf_server.route(TRENDING, Reply.html(fixture_bytes(SAMPLE_PAGE)))
    run = scrape_url()
    assert run.status == ScrapeRun.Status.OK
    return run, sorted(Paper.objects.values_list("arxiv_id", "title", "upvotes", "authors", "abstract"))


def assert_failed_and_nothing_lost(run, good_run, papers_before, match):
    run.refresh_from_db()
    assert run.status == ScrapeRun.Status.FAILED
    assert re.search(match, run.error), run.error
    assert run.finished_at is not None
    assert sorted(Paper.objects.values_list("arxiv_id", "title", "upvotes", "authors", "abstract")) == papers_before
    assert not PaperRank.objects.filter(run=run).exists()
    assert store.latest_successful_run() == good_run
    assert [r[0] for r in papers_before] == sorted(Paper.objects.from_last_good_scrape().values_list("arxiv_id", flat=True))


def test_500_every_time_fails_loudly_and_keeps_yesterday(scrape_settings, hf_server):
    good, before = load_yesterday(hf_server)
    hf_server.route(TRENDING, Reply(status=503, body="down"))
    run = scrape_url()
    assert_failed_and_nothing_lost(run, good, before, r"answered HTTP 503")
    assert run.http_status == 503
    assert len(hf_server.hits(TRENDING)) == 1 + 1 + 3  # yesterday, then one try and three retries
    [alert] = mail.outbox
    assert alert.to == ["ops@example.org"]
    assert "Paper scrape failed" in alert.subject
    assert "answered HTTP 503" in alert.body and "Every stored paper was kept" in alert.body
    assert f"/admin/newsletter/scraperun/{run.pk}/change/" in alert.body
    assert run.alerted_at is not None


def test_read_timeout(scrape_settings, hf_server):
    good, before = load_yesterday(hf_server)
    hf_server.route(TRENDING, Reply.html(fixture_bytes(SAMPLE_PAGE), delay=1.0))
    run = scrape_url()
    assert_failed_and_nothing_lost(run, good, before, r"timed out|Read timed out|ReadTimeout")
    assert len(hf_server.hits(TRENDING)) == 1 + 1 + 3


def test_connection_refused(scrape_settings):
    run = scrape_url(closed_port_url())
    assert run.status == ScrapeRun.Status.FAILED
    assert "could not be fetched" in run.error or "kept failing" in run.error


@pytest.mark.parametrize("content_length", [True, False], ids=["declared", "streamed"])
def test_oversize_body_is_refused(scrape_settings, hf_server, content_length):
    good, before = load_yesterday(hf_server)
    scrape_settings.SCRAPE_MAX_BYTES = 100_000
    hf_server.route(TRENDING, Reply.html(fixture_bytes(SAMPLE_PAGE), content_length=content_length))
    run = scrape_url()
    assert_failed_and_nothing_lost(run, good, before, r"more than the 100000 bytes allowed|is 146100 bytes, more than")


def test_page_without_props_uses_the_cards_and_keeps_known_authors(scrape_settings, hf_server):
    api = "/api/daily_papers?date=2026-08-21"
    hf_server.route(api, Reply.json(fixture_bytes(SAMPLE_ITEMS)))
    assert scrape_url(hf_server.url(api)).status == ScrapeRun.Status.OK
    hf_server.route(TRENDING, Reply.html(page_without_props(SAMPLE_PAGE.read_text())))
    run = scrape_url()
    assert run.status == ScrapeRun.Status.OK, run.error
    assert run.parser == "cards"
    assert (run.papers_found, run.papers_new, run.papers_updated) == (17, 0, 0)
    assert "reading the cards" in run.error  # the warning is kept on the run
    # The cards have no authors or abstracts: what the API stored stays.
    assert_run_matches(run, fixture_items(SAMPLE_ITEMS))
    assert Paper.objects.exclude(abstract="").count() == 17


def test_cards_only_page_on_an_empty_store(scrape_settings, hf_server):
    hf_server.route(TRENDING, Reply.html(page_without_props(SAMPLE_PAGE.read_text())))
    run = scrape_url()
    assert run.status == ScrapeRun.Status.OK, run.error
    source = expected(fixture_items(SAMPLE_ITEMS))
    assert [(p.arxiv_id, p.title, p.upvotes) for p in Paper.objects.from_run(run)] == [(i, t, u) for i, t, _, u in source]
    assert all(p.authors == [] for p in Paper.objects.all())


def test_page_with_neither_fails_keeps_everything_and_alerts_over_smtp(scrape_settings, hf_server, smtp_settings):
    good, before = load_yesterday(hf_server)
    hf_server.route(TRENDING, Reply.html(page_without_cards(page_without_props(SAMPLE_PAGE.read_text()))))
    run = scrape_url()
    assert_failed_and_nothing_lost(run, good, before, r"no valid paper in the page")
    [received] = smtp_settings.wait_for(1)
    assert received["envelope_to"] == ["ops@example.org"]
    assert "no valid paper" in received["message"].get_content()


def test_truncated_api_json(scrape_settings, hf_server):
    api = "/api/daily_papers?date=2026-05-08"
    body = fixture_bytes("api_daily_papers_2026-05-08.json")
    hf_server.route(api, Reply.json(body), Reply.json(body[: len(body) // 3]))
    good = scrape_url(hf_server.url(api))
    before = sorted(Paper.objects.values_list("arxiv_id", "title", "upvotes", "authors", "abstract"))
    run = scrape_url(hf_server.url(api))
    assert_failed_and_nothing_lost(run, good, before, r"not valid JSON")


def test_partial_page_far_fewer_than_last_good_scrape_fails(scrape_settings, hf_server):
    good, before = load_yesterday(hf_server)
    html = SAMPLE_PAGE.read_text()
    one_card = re.sub(r"(</article>).*(</div></section>)", r"\1\2", page_without_props(html), flags=re.S)
    hf_server.route(TRENDING, Reply.html(one_card))
    run = scrape_url()
    assert_failed_and_nothing_lost(run, good, before, r"found 1 paper\(s\), far fewer than the 17 of the last good scrape")


def test_robots_txt_disallow_is_honoured_and_cached(scrape_settings, hf_server):
    hf_server.route("/robots.txt", Reply(body="User-agent: TrendingPapersDigest\nDisallow: /papers/\n", content_type="text/plain"))
    hf_server.route(TRENDING, Reply.html(fixture_bytes(SAMPLE_PAGE)))
    first = scrape_url()
    second = scrape_url()
    assert first.status == second.status == ScrapeRun.Status.FAILED
    assert "robots.txt" in first.error and "does not allow" in first.error
    assert hf_server.hits(TRENDING) == []
    assert len(hf_server.hits("/robots.txt")) == 1  # cached
    # Other agents' rules do not bind us.
    api = "/api/daily_papers?date=2026-08-21"
    hf_server.route(api, Reply.json(fixture_bytes(SAMPLE_ITEMS)))
    assert scrape_url(hf_server.url(api)).status == ScrapeRun.Status.OK


def test_unreachable_robots_txt_stops_the_scrape(scrape_settings, hf_server):
    hf_server.route("/robots.txt", Reply(status=503))
    hf_server.route(TRENDING, Reply.html(fixture_bytes(SAMPLE_PAGE)))
    run = scrape_url()
    assert run.status == ScrapeRun.Status.FAILED
    assert "robots.txt answered HTTP 503" in run.error
    assert hf_server.hits(TRENDING) == []


def test_missing_robots_txt_allows(scrape_settings, hf_server):
    hf_server.route("/robots.txt", Reply(status=404))
    hf_server.route(TRENDING, Reply.html(fixture_bytes(SAMPLE_PAGE)))
    assert scrape_url().status == ScrapeRun.Status.OK
