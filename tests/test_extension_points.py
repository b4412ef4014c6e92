"""The seams new features build on, used the way a newcomer would: a second paper source
(ADDING_A_SOURCE.md) and another ranking (DIGEST_RANKING), each plugged in through settings
alone, with the whole pipeline around them real (fetch over loopback, parse, store, topic
assignment, sending in-process to the locmem outbox, the staff preview)."""

import json
import re
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.core import mail
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.core.management import call_command
from django.utils import timezone

from newsletter import sources
from newsletter.digests import dispatch, selection
from newsletter.digests.preview import next_digest
from newsletter.digests.ranking import Ranking
from newsletter.models import DigestContent, Paper, ScrapeRun
from newsletter.scraping import ScrapeError
from newsletter.scraping.parse import (
    MAX_TEXT,
    MAX_TITLE,
    InvalidRecord,
    ScrapedPaper,
    clean_arxiv_id,
    clean_count,
    clean_line,
    collect,
    load_json,
    nothing_found,
)
from newsletter.scraping.run import scrape_url
from newsletter.sources.base import Source
from newsletter.sources.huggingface import HuggingFace
from newsletter.tasks.digests import dispatch_now

from .support.hf_server import SAMPLE_PAGE, Reply, fixture_bytes
from .support.seeding import make_subscriber
from .test_digest_choosing import arxiv_ids_in, paper, sent_arxiv_ids

HERE = "tests.test_extension_points"
HUGGING_FACE = "newsletter.sources.huggingface.HuggingFace"


# --- a second paper source ------------------------------------------------------------------


class ExampleListing(Source):
    """A source as ADDING_A_SOURCE.md describes one: a JSON listing at /listing/<date>."""

    name = "example-listing"
    label = "Example Listing"
    kinds = {"listing": "Example listing"}

    def kind_of(self, url):
        return "listing" if urlsplit(url).path.startswith("/listing/") else None

    def parse(self, body, content_type=""):
        data = load_json(body, "the listing")
        records = data.get("papers") if isinstance(data, dict) else None
        result = collect("listing", records if isinstance(records, list) else [], self.paper_from)
        if not result.papers:
            raise ScrapeError(nothing_found("the listing", result))
        return result

    @staticmethod
    def paper_from(record):
        if not isinstance(record, dict):
            raise InvalidRecord("not an object")
        arxiv_id = clean_arxiv_id(record.get("arxiv"))
        title = clean_line(record.get("title"), MAX_TITLE)
        if not title:
            raise InvalidRecord(f"{arxiv_id}: empty title")
        fields = {"title": title, "abstract": clean_line(record.get("abstract"), MAX_TEXT), "upvotes": clean_count(record.get("votes")) or 0}
        return ScrapedPaper(arxiv_id=arxiv_id, fields=fields)

    def paper_url(self, arxiv_id):
        return f"https://listing.example/papers/{arxiv_id}"


class ClaimsTrendingToo(ExampleListing):
    name = "greedy"
    kinds = {"trending": "Someone else's trending page"}


@pytest.fixture
def two_sources(settings):
    settings.PAPER_SOURCES = [f"{HERE}.ExampleListing", HUGGING_FACE]
    return settings


def test_a_second_source_reads_its_own_pages_with_the_shared_rules_and_no_migration(two_sources, scrape_settings, hf_server, topics):
    listing = {"papers": [
        {"arxiv": "2611.01234", "title": "Agents that plan  with\ntools %recipient.unsubscribe_url%", "votes": 12},
        {"arxiv": "not-an-id", "title": "skipped: no arXiv id"},
        {"arxiv": "2611.01235v2", "title": "Second paper", "abstract": "About code.", "votes": 3},
    ]}
    hf_server.route("/listing/2026-11-30", Reply.json(json.dumps(listing)))
    hf_server.route("/papers/trending", Reply.html(fixture_bytes(SAMPLE_PAGE)))

    run = scrape_url(hf_server.url("/listing/2026-11-30"))

    assert (run.status, run.kind, run.kind_label, run.parser) == (ScrapeRun.Status.OK, "listing", "Example listing", "listing")
    assert (run.papers_found, run.records_skipped) == (2, 1) and "record 2: the arXiv id is not valid" in run.error
    run.full_clean()  # the kind is valid: it is a registered source's
    stored = Paper.objects.get(arxiv_id="2611.01234")
    # The shared cleaning applies to every source: whitespace collapsed, merge syntax inert.
    assert stored.title.startswith("Agents that plan with tools %\u200brecipient.")
    assert stored.source.name == "example-listing"
    assert Paper.objects.get(arxiv_id="2611.01235").upvotes == 3

    # Hugging Face still reads its own pages beside it.
    trending = scrape_url()
    assert (trending.status, trending.kind, trending.kind_label) == (ScrapeRun.Status.OK, "trending", "Trending page")
    # No migration for the new kind: ScrapeRun.kind has no choices.
    call_command("makemigrations", "newsletter", "--check", "--dry-run", verbosity=0)

    two_sources.PAPER_SOURCES = [HUGGING_FACE]
    with pytest.raises(ValidationError) as refused:
        run.full_clean()
    assert "kind" in refused.value.message_dict
    assert sources.for_url(hf_server.url("/listing/2026-11-30"))[0].name == "huggingface"  # it reads any path


def test_the_registry_refuses_two_sources_claiming_one_kind(settings):
    settings.PAPER_SOURCES = [HUGGING_FACE, f"{HERE}.ClaimsTrendingToo"]
    with pytest.raises(ImproperlyConfigured, match="'trending'"):
        sources.registered()
    settings.PAPER_SOURCES = []
    with pytest.raises(ImproperlyConfigured, match="no source"):
        sources.registered()


def test_each_paper_links_to_the_source_that_listed_it(two_sources, topics, make_scrape):
    now = timezone.now()
    make_scrape([paper(1, {"agents": 9.0}, upvotes=50)], started_at=now - timedelta(days=1), kind="trending")
    make_scrape([paper(2, {"agents": 8.0}, upvotes=40)], started_at=now - timedelta(hours=1), kind="listing")
    reader = make_subscriber("weekly@example.org", topics=[topics["agents"]], frequency="weekly",
                             weekday=timezone.localdate(now).weekday())

    preview = next_digest(reader, now)

    assert preview.paper_count == 2, preview.reason
    assert re.search(r'<a href="https://huggingface.co/papers/2611.20001"[^>]*>Hugging Face</a>', preview.html)
    assert re.search(r'<a href="https://listing.example/papers/2611.20002"[^>]*>Example Listing</a>', preview.html)
    assert "Example Listing: https://listing.example/papers/2611.20002" in preview.text
    assert "Hugging Face: https://huggingface.co/papers/2611.20001" in preview.text


def test_hugging_face_kinds_go_by_path():
    source = HuggingFace()
    assert source.kind_of("https://huggingface.co/api/daily_papers?date=2026-11-30") == "api"
    assert source.kind_of("https://huggingface.co/papers/date/2026-11-30") == "daily"
    assert source.kind_of("https://huggingface.co/papers") == "daily"
    assert source.kind_of("http://127.0.0.1:8765/papers/trending") == "trending"
    assert source.paper_url("2611.01234") == "https://huggingface.co/papers/2611.01234"


# --- another ranking ------------------------------------------------------------------------


class FewestUpvotesFirst(Ranking):
    def order(self, reader, relevance, pool):
        return sorted(relevance, key=lambda pk: (pool.upvotes[pk], pk))


class RotatedPerReader(Ranking):
    """Personal: each reader starts somewhere else in the list."""

    personal = True

    def order(self, reader, relevance, pool):
        ids = sorted(relevance)
        start = reader.subscriber_id % len(ids)
        return ids[start:] + ids[:start]


RANKED = [paper(1, {"agents": 9.0}, upvotes=500), paper(2, {"agents": 5.0}, upvotes=7),
          paper(3, {"agents": 4.0}, upvotes=90), paper(4, {"agents": 8.0}, upvotes=1)]


def preview_ids(reader) -> list[str]:
    preview = next_digest(reader)
    assert preview.paper_count, preview.reason
    return arxiv_ids_in(preview.text)


def test_one_ranking_orders_sending_the_preview_and_the_dry_run(settings, topics, make_scrape):
    make_scrape(RANKED, started_at=timezone.now() - timedelta(hours=1))
    reader = make_subscriber("ranked@example.org", topics=[topics["agents"]], papers_per_email=3)
    # The default: topic score x log2(2 + upvotes).
    assert preview_ids(reader) == ["2611.20001", "2611.20003", "2611.20002"]

    settings.DIGEST_RANKING = f"{HERE}.FewestUpvotesFirst"
    expected = ["2611.20004", "2611.20002", "2611.20003"]
    assert preview_ids(reader) == expected
    assert dispatch.plan(ignore_hour=True).would_send == 1
    dispatch_now(ignore_hour=True)

    [message] = mail.outbox
    assert sent_arxiv_ids(message) == expected
    content = DigestContent.objects.get()
    assert [p.arxiv_id for p in content.ordered_papers()] == expected


def test_a_personal_ranking_is_asked_for_every_reader(settings, topics, make_scrape):
    make_scrape(RANKED, started_at=timezone.now() - timedelta(hours=1))
    readers = [make_subscriber(f"r{n}@example.org", topics=[topics["agents"]], papers_per_email=1) for n in range(4)]
    pool = selection.paper_pool("daily")
    as_readers = [selection.Reader(r.pk, "daily", timezone.localdate(), (topics["agents"].pk,), 1) for r in readers]

    settings.DIGEST_RANKING = f"{HERE}.RotatedPerReader"
    personal = selection.choose(as_readers, {"daily": pool})

    ids = sorted(pool.paper_ids)
    assert personal == [(ids[r.pk % 4],) for r in readers]
    assert len(set(personal)) == 4  # same topics, four different digests
