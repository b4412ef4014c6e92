"""The real fetching code against a real HTTP server on 127.0.0.1: 200, 304 with ETag, 429 with
Retry-After, 500 then 200, read timeouts, oversize bodies, robots.txt, the cards fallback, a page
with neither props nor cards, truncated JSON, each real fixture checked paper by paper, and
redirects (only to allowed hosts, each after its own robots.txt; https when required) with
errors and alerts that never quote a response."""

import re

import pytest
from django.core import mail
from django.core.cache import cache

from newsletter.models import Paper, PaperRank, ScrapeRun
from newsletter.scraping import store
from newsletter.scraping.run import scrape_url

from .support.hf_server import ALLOW_ALL_ROBOTS, API_FILES, SAMPLE_PAGE, HFServer, Reply, closed_port_url, fixture_bytes, fixture_items
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


# --- redirects, and what errors may quote (issue 8, finding 12) ------------------------------

SECRET = "SECRET-FROM-A-RESPONSE-BODY"
LEAKY_PAGE = f'<html><body><article><h3><a href="/papers/{SECRET}">{SECRET}</a></h3><div>7</div></article></body></html>'


@pytest.fixture
def other_host():
    """A second site on another loopback address: another host to the scraper."""
    server = HFServer(host="127.0.0.2").start()
    yield server
    server.stop()


def test_a_redirect_to_another_host_is_not_followed(scrape_settings, hf_server, other_host):
    good, before = load_yesterday(hf_server)
    target = "/papers/trending?via=redirect"
    hf_server.route(TRENDING, Reply(status=302, headers={"Location": other_host.url(target)}))
    other_host.route(target, Reply.html(LEAKY_PAGE))
    run = scrape_url()
    assert_failed_and_nothing_lost(run, good, before, r"redirected to 127\.0\.0\.2, a host not in SCRAPE_ALLOWED_HOSTS")
    assert other_host.requests == []  # neither its robots.txt nor the page
    [alert] = mail.outbox
    assert "127.0.0.2" in alert.body
    assert SECRET not in run.error and SECRET not in alert.body


def test_an_allowed_other_host_is_fetched_only_as_its_own_robots_txt_allows(scrape_settings, hf_server, other_host):
    scrape_settings.SCRAPE_ALLOWED_HOSTS = ["127.0.0.1", "127.0.0.2"]
    hf_server.route(TRENDING, Reply(status=301, headers={"Location": other_host.url("/mirror/trending")}))
    other_host.route("/robots.txt", Reply(body="User-agent: *\nDisallow: /mirror/\n", content_type="text/plain"))
    other_host.route("/mirror/trending", Reply.html(fixture_bytes(SAMPLE_PAGE)))
    refused = scrape_url()
    assert refused.status == ScrapeRun.Status.FAILED
    assert f"robots.txt of {other_host.url('')} does not allow" in refused.error
    assert len(other_host.hits("/robots.txt")) == 1 and other_host.hits("/mirror/trending") == []

    cache.clear()  # the cached robots.txt
    other_host.route("/robots.txt", Reply(body=ALLOW_ALL_ROBOTS, content_type="text/plain"))
    run = scrape_url()
    assert run.status == ScrapeRun.Status.OK, run.error
    assert run.papers_found == 17 and len(other_host.hits("/mirror/trending")) == 1


def test_too_many_redirects_on_the_allowed_host(scrape_settings, hf_server):
    hf_server.route(TRENDING, Reply(status=302, headers={"Location": hf_server.url(TRENDING)}))
    run = scrape_url()
    assert run.status == ScrapeRun.Status.FAILED
    assert "more than 5 redirects" in run.error
    assert len(hf_server.hits(TRENDING)) == 6


def test_only_https_when_required(scrape_settings, hf_server, tmp_path):
    from .test_deploy_files import GOOD_KEY, run_production_settings

    scrape_settings.SCRAPE_REQUIRE_HTTPS = True
    hf_server.route(TRENDING, Reply.html(fixture_bytes(SAMPLE_PAGE)))
    run = scrape_url()
    assert run.status == ScrapeRun.Status.FAILED
    assert "only https URLs are fetched" in run.error
    assert hf_server.requests == []
    # Production settings require it; development and tests (plain-HTTP fakes) do not.
    production = run_production_settings(
        tmp_path, "import django; django.setup(); from django.conf import settings; print(settings.SCRAPE_REQUIRE_HTTPS)",
        SECRET_KEY=GOOD_KEY,
    )
    assert production.stdout.strip().splitlines()[-1] == "True", production.stderr


def test_errors_and_alerts_quote_no_response_body(scrape_settings, hf_server):
    hf_server.route(TRENDING, Reply.html(LEAKY_PAGE))
    run = scrape_url()
    assert run.status == ScrapeRun.Status.FAILED and "no valid paper" in run.error
    hf_server.route(TRENDING, Reply(status=503, body=SECRET))
    down = scrape_url()
    assert down.status == ScrapeRun.Status.FAILED and "answered HTTP 503" in down.error
    assert len(mail.outbox) == 2
    for text in (run.error, down.error, *(m.body for m in mail.outbox), *(m.subject for m in mail.outbox)):
        assert SECRET not in text, text
