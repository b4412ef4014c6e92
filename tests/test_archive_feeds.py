"""The public archive and its Atom feeds (newsletter/archive/), on the real PostgreSQL and Redis:
which days, papers and topics each page shows, pagination, feeds read back by a real feed
parser (feedparser) with entry ids that survive a second scrape, caching and conditional
requests, hostile scraped fields (the battery's case), no personal data, and one visit in a
real Chromium with screenshots (tests/artifacts/screenshots/archive-*.png)."""

import json
import re
from datetime import datetime, timedelta, timezone as dt_timezone

import feedparser
import pytest
from django.contrib.messages import constants as message_levels
from django.contrib.messages.storage.base import Message
from django.contrib.messages.storage.cookie import CookieStorage
from django.core.cache import cache
from django.db import connection
from django.test import Client, RequestFactory
from django.test.utils import CaptureQueriesContext

from newsletter.models import Delivery, Paper, PaperTopicScore
from newsletter.scraping.run import scrape_file
from subscriptions import tokens
from subscriptions.models import Subscriber, Topic

from .support import hostile_cases
from .support.hf_server import FIXTURES, SAMPLE_PAGE
from .support.hostile_cases import Response, World
from .support.links import feed_links, path_of
from .support.seeding import make_scrape, make_subscriber, sent_digest
from .test_browser_flow import DESKTOP, PHONE, Visit, chromium  # noqa: F401  (fixture)

UTC = dt_timezone.utc
DAY1, DAY2, DAY3 = datetime(2026, 11, 20, tzinfo=UTC), datetime(2026, 11, 21, tzinfo=UTC), datetime(2026, 11, 22, tzinfo=UTC)


def paper(n: int, title: str | None = None, topics=("agents",), seen=DAY1, **fields) -> dict:
    return {"arxiv_id": f"2611.{n:05d}", "title": title or f"Paper number {n}", "upvotes": 100 - n,
            "topics": {slug: 0.9 for slug in topics}, "first_seen_at": seen, **fields}


def scrape(at: datetime, papers, status="ok"):
    return make_scrape(papers, status=status, started_at=at)


def titles(body: str) -> list[str]:
    """The paper titles of an archive page, in page order."""
    return re.findall(r"<h3>(?:<a [^>]*>)?([^<]+)", body)


def get(client, path, **headers):
    response = client.get(path, headers=headers)
    return response, response.content.decode()


@pytest.fixture
def three_days(topics):
    """Day 1: one good scrape. Day 2: a good one at 05:00 and a later good one (the retry)
    at 08:30, which the day shows. Day 3: only a failed scrape (not archived)."""
    scrape(DAY1 + timedelta(hours=5), [paper(1, "Agents that plan"), paper(2, "Code that writes code", topics=("code", "agents"))])
    scrape(DAY2 + timedelta(hours=5), [paper(3, "Early paper of day two", seen=DAY2), paper(4, "Vision paper", topics=("vision-3d",), seen=DAY2)])
    scrape(DAY2 + timedelta(hours=8, minutes=30), [paper(5, "Retry's first paper", topics=("agents", "code"), seen=DAY2),
                                                   paper(4, "Vision paper", topics=("vision-3d",), seen=DAY2)])
    scrape(DAY3 + timedelta(hours=5), [], status="failed")  # (a failed scrape stores no paper)


# --- the pages --------------------------------------------------------------------------------


def test_index_lists_each_day_with_a_good_scrape_newest_first(client, three_days):
    response, body = get(client, "/archive/")

    assert response.status_code == 200
    days = re.findall(r'href="/archive/(\d{4}-\d\d-\d\d)/"', body)
    assert days == ["2026-11-21", "2026-11-20"]  # the failed scrape's day is not archived
    # Each day with its newest good scrape's first papers: the 08:30 retry on day two.
    assert body.index("Retry&#x27;s first paper") < body.index("Agents that plan")
    assert "Early paper of day two" not in body
    assert "2 papers" in body
    # Every active topic is linked.
    assert all(f'href="/topics/{slug}/"' in body for slug in topics_slugs())


def topics_slugs():
    return list(Topic.objects.filter(active=True).values_list("slug", flat=True))


def test_a_day_shows_its_newest_good_scrape_in_rank_order_with_each_papers_topics(client, three_days):
    Topic.objects.filter(slug="code").update(name="Code & <tools>")  # operator text is escaped too

    response, body = get(client, "/archive/2026-11-21/")

    assert response.status_code == 200
    assert titles(body) == ["Retry's first paper".replace("'", "&#x27;"), "Vision paper"]
    first = body.split('<li class="paper')[1]
    assert 'href="/topics/agents/">Agents and tool use</a>' in first and 'href="/topics/code/">Code &amp; &lt;tools&gt;</a>' in first
    assert "#1" in first and "https://arxiv.org/abs/2611.00005" in first and "https://huggingface.co/papers/2611.00005" in first
    # Neighbouring days link to each other; the failed day is no neighbour.
    assert 'href="/archive/2026-11-20/"' in body and "2026-11-22" not in body
    day_one = client.get("/archive/2026-11-20/").content.decode()
    assert 'href="/archive/2026-11-21/"' in day_one and titles(day_one) == ["Agents that plan", "Code that writes code"]


def test_an_inactive_topic_is_not_shown_on_papers_and_has_no_page(client, three_days):
    Topic.objects.filter(slug="code").update(active=False)  # (update: no retraining signal)

    body = client.get("/archive/2026-11-20/").content.decode()

    assert "/topics/code/" not in body and "/topics/agents/" in body
    assert client.get("/topics/code/").status_code == 404
    assert client.get("/feeds/topics/code.atom").status_code == 404


@pytest.mark.parametrize("path", [
    "/archive/2026-11-22/",  # only a failed scrape that day
    "/archive/2026-11-19/",  # nothing at all
    "/archive/2026-02-30/",  # no such date
    "/topics/no-such-topic/",
    "/feeds/topics/no-such-topic.atom",
    "/archive/?page=3",
    "/archive/?page=abc",
    "/topics/agents/?page=0",
    "/topics/agents/?page=0000000000001",  # (13 digits: not a page number)
    "/topics/agents/?page=%D9%A1",  # an Arabic-Indic digit one
])
def test_unknown_days_topics_and_pages_are_404(client, three_days, path):
    assert client.get(path).status_code == 404


def test_a_topic_shows_its_papers_newest_first_paginated(client, topics, settings):
    settings.ARCHIVE_PAPERS_PER_PAGE = 5
    scrape(DAY1, [paper(n, seen=DAY1 + timedelta(hours=n)) for n in range(1, 13)]
           + [paper(50, "Only in code", topics=("code",), seen=DAY2)])
    scrape(DAY3, [paper(60, "Newest agents paper", seen=DAY3)])

    pages = [client.get(f"/topics/agents/?page={n}") for n in (1, 2, 3)]

    assert [p.status_code for p in pages] == [200, 200, 200]
    bodies = [p.content.decode() for p in pages]
    assert titles(bodies[0]) == ["Newest agents paper", "Paper number 12", "Paper number 11", "Paper number 10", "Paper number 9"]
    assert titles(bodies[1]) == [f"Paper number {n}" for n in (8, 7, 6, 5, 4)]
    assert titles(bodies[2]) == ["Paper number 3", "Paper number 2", "Paper number 1"]
    assert "13 papers" in bodies[0] and "Page 1 of 3" in bodies[0]
    assert 'href="?page=2"' in bodies[0] and 'href="?page=1"' in bodies[1] and 'href="?page=3"' in bodies[1]
    assert "Only in code" not in "".join(bodies)
    assert client.get("/topics/agents/?page=4").status_code == 404
    assert titles(client.get("/topics/code/").content.decode()) == ["Only in code"]


def test_the_index_of_days_is_paginated(client, topics, settings):
    settings.ARCHIVE_DAYS_PER_PAGE = 2
    for n in range(5):
        scrape(DAY1 + timedelta(days=n, hours=5), [paper(n + 1, seen=DAY1 + timedelta(days=n))])

    days = [re.findall(r'href="/archive/(\d{4}-\d\d-\d\d)/"', client.get(f"/archive/?page={n}").content.decode()) for n in (1, 2, 3)]

    assert days == [["2026-11-24", "2026-11-23"], ["2026-11-22", "2026-11-21"], ["2026-11-20"]]


def test_a_topic_page_and_feed_cost_the_same_queries_for_3_or_30_papers(client, topics):
    def queries(path):
        cache.clear()
        with CaptureQueriesContext(connection) as captured:
            assert client.get(path).status_code == 200
        return len(captured)

    scrape(DAY1, [paper(n, topics=("agents", "code")) for n in range(1, 4)])
    few = {path: queries(path) for path in ("/topics/agents/", "/feeds/topics/agents.atom", "/archive/2026-11-20/", "/archive/")}
    scrape(DAY2, [paper(n, topics=("agents", "code", "evaluation"), seen=DAY2) for n in range(4, 34)])
    many = {path: queries(path.replace("2026-11-20", "2026-11-21")) for path in few}

    assert many == few, (few, many)
    assert max(few.values()) <= 10


# --- caching and conditional requests ----------------------------------------------------------


def test_pages_are_cached_until_a_new_good_scrape_or_topic_assignment(client, three_days):
    first, body = get(client, "/topics/agents/")
    with CaptureQueriesContext(connection) as captured:
        again, body_again = get(client, "/topics/agents/?utm_source=x")  # other parameters: the same page
    assert body_again == body and again["ETag"] == first["ETag"]
    assert len(captured) == 3  # only the state the key is made of (newest scrape, assignment, topics)

    scrape(DAY3 + timedelta(hours=9), [], status="failed")  # (a failed scrape stores no paper)
    unchanged, _ = get(client, "/topics/agents/")
    assert unchanged["ETag"] == first["ETag"]

    scrape(DAY3 + timedelta(hours=10), [paper(8, "Fresh agents paper", seen=DAY3)])
    fresh, body = get(client, "/topics/agents/")
    assert fresh["ETag"] != first["ETag"] and titles(body)[0] == "Fresh agents paper"

    # Papers assigned to a topic again (new rows): the page shows it at once.
    vision = Topic.objects.get(slug="vision-3d")
    PaperTopicScore.objects.create(paper=Paper.objects.get(arxiv_id="2611.00001"), topic=vision, score=0.8)
    assert "Agents that plan" in client.get("/topics/vision-3d/").content.decode()


@pytest.mark.parametrize("path", ["/archive/", "/archive/2026-11-21/", "/topics/agents/", "/feeds/all.atom", "/feeds/topics/agents.atom"])
def test_conditional_requests_get_304_until_the_next_good_scrape(client, three_days, path):
    response = client.get(path)
    etag, last_modified = response["ETag"], response["Last-Modified"]
    assert last_modified == "Sat, 21 Nov 2026 08:30:00 GMT"  # when the newest good scrape finished
    assert "public" in response["Cache-Control"] and "max-age=" in response["Cache-Control"]

    assert client.get(path, headers={"if-none-match": etag}).status_code == 304
    assert client.get(path, headers={"if-modified-since": last_modified}).status_code == 304
    assert client.head(path, headers={"if-none-match": etag}).status_code == 304

    scrape(DAY3 + timedelta(hours=5), [paper(9, "Next day", seen=DAY3)])
    renewed = client.get(path, headers={"if-none-match": etag})
    assert renewed.status_code == 200 and renewed["ETag"] != etag
    assert client.post(path).status_code == 405


# --- feeds -----------------------------------------------------------------------------------


def parse_feed(client, path, **headers):
    response = client.get(path, headers=headers)
    assert response.status_code == 200 and response["Content-Type"].startswith("application/atom+xml")
    feed = feedparser.parse(response.content)
    assert not feed.bozo, feed.get("bozo_exception")
    assert feed.version == "atom10"
    return feed


def test_feeds_are_valid_atom_with_each_papers_links_and_topics(client, three_days):
    everything = parse_feed(client, "/feeds/all.atom")
    agents = parse_feed(client, "/feeds/topics/agents.atom", host="attacker.example")

    assert everything.feed.title == "Trending Papers Digest: trending AI papers"
    assert everything.feed.id == "http://testserver/feeds/all.atom"
    assert {link.rel: link.href for link in everything.feed.links} == {"alternate": "http://testserver/archive/", "self": "http://testserver/feeds/all.atom"}
    # Newest first (when they first trended).
    assert [e.title for e in everything.entries] == ["Retry's first paper", "Vision paper", "Early paper of day two",
                                                     "Code that writes code", "Agents that plan"]
    entry = everything.entries[0]
    assert entry.id == "https://arxiv.org/abs/2611.00005"
    assert entry.link == "https://huggingface.co/papers/2611.00005"
    assert entry.published == entry.updated == "2026-11-21T00:00:00+00:00"
    assert sorted(tag.term for tag in entry.tags) == ["Agents and tool use", "Code generation"]
    assert entry.summary_detail.type == "text/html" and 'href="https://arxiv.org/pdf/2611.00005"' in entry.summary
    assert 'href="http://testserver/topics/agents/"' in entry.summary
    # The topic's feed: only its papers; links from SITE_URL whatever Host the request named.
    assert agents.feed.title == "Trending Papers Digest: Agents and tool use"
    assert [e.title for e in agents.entries] == ["Retry's first paper", "Early paper of day two", "Code that writes code",
                                                 "Agents that plan"]
    assert agents.feed.id == "http://testserver/feeds/topics/agents.atom"
    assert "attacker.example" not in str(agents)


def test_entry_ids_stay_the_same_across_two_scrapes(client, topics, tmp_path):
    """Two real scrapes (parser, store, topic model): the second lists the same papers in
    another order with other upvotes, one title corrected, and one new paper."""
    first_run = scrape_file(SAMPLE_PAGE)
    assert first_run.status == "ok"
    before = {e.link: e for e in parse_feed(client, "/feeds/all.atom").entries}

    items = json.loads((FIXTURES / "api_daily_papers_2026-08-21.json").read_text())[::-1]
    for n, item in enumerate(items):
        item["paper"]["upvotes"] = 1000 - n
    items[0]["paper"]["title"] = items[0]["title"] = "A corrected title"
    newcomer = json.loads((FIXTURES / "api_daily_papers_2026-05-08.json").read_text())[0]
    path = tmp_path / "second.json"
    path.write_text(json.dumps([newcomer, *items]))
    assert scrape_file(path).status == "ok"
    after = {e.link: e for e in parse_feed(client, "/feeds/all.atom").entries}

    kept = set(before) & set(after)
    assert len(kept) == len(before) == len(items) and len(after) == len(before) + 1
    assert all(after[link].id == before[link].id == f"https://arxiv.org/abs/{link.rsplit('/', 1)[1]}" for link in kept)
    assert all(after[link].published == before[link].published for link in kept)
    corrected = f"https://huggingface.co/papers/{items[0]['paper']['id']}"
    assert before[corrected].title != "A corrected title" and after[corrected].title == "A corrected title"
    [new] = set(after) - set(before)
    assert new.endswith(newcomer["paper"]["id"])


ALL_FEED = ("Trending Papers Digest: trending AI papers", "http://testserver/feeds/all.atom")


@pytest.mark.parametrize(("path", "announced"), [
    ("/", [ALL_FEED]),
    ("/archive/", [ALL_FEED]),
    ("/archive/2026-11-21/", [ALL_FEED]),
    ("/topics/agents/", [("Trending Papers Digest: Agents and tool use", "http://testserver/feeds/topics/agents.atom"), ALL_FEED]),
    ("/topics/code/?page=1", [("Trending Papers Digest: Code generation", "http://testserver/feeds/topics/code.atom"), ALL_FEED]),
])
def test_pages_announce_their_feeds_and_each_announced_feed_is_atom(client, three_days, path, announced):
    """Feed autodiscovery: absolute hrefs from SITE_URL (as the feeds build their own links,
    whatever Host the request named), each titled as the feed titles itself."""
    assert feed_links(get(client, path, host="attacker.example")[1]) == announced
    for title, href in announced:
        feed = parse_feed(client, path_of(href))
        assert (feed.feed.title, feed.feed.id) == (title, href)
        assert feed.entries


# --- the sign-up page ----------------------------------------------------------------------------


def test_signup_page_shows_the_top_papers_of_the_latest_good_scrape_and_links_the_archive(client, three_days):
    scrape(DAY2 + timedelta(hours=9), [paper(20, "Top paper"), paper(21, "Second paper"), paper(22, "Third paper"),
                                       paper(23, "Fourth paper")])
    scrape(DAY3, [], status="failed")

    body = client.get("/").content.decode()

    assert titles(body) == ["Top paper", "Second paper", "Third paper"]
    assert 'href="/archive/"' in body and 'href="/feeds/all.atom"' in body and 'href="/archive/2026-11-21/"' in body
    assert "<form" in body and 'name="email"' in body  # the form is still there


def test_signup_page_without_any_scrape_still_links_the_archive_and_feed(client, topics):
    body = client.get("/").content.decode()

    assert 'href="/archive/">Browse the archive</a>' in body and 'href="/feeds/all.atom">Atom feed</a>' in body
    assert "A taste of the latest digest" not in body
    assert "Nothing archived yet" in client.get("/archive/").content.decode()


# --- hostile input and personal data --------------------------------------------------------


class ClientHTTP:
    """The battery's adapter (tests/support/hostile_cases.py) over Django's test client."""

    def request(self, method, path, **kwargs):
        response = getattr(Client(), method.lower())(path)
        return Response(response.status_code, response.content.decode(), dict(response.headers))


def test_hostile_scraped_fields_stay_inert_in_pages_and_feeds(topics):
    world = World.create()
    results = hostile_cases.case_scraped_fields_in_archive_and_feeds(ClientHTTP(), world)
    assert [name for name, held in results if not held] == [] and len(results) == 8

    # A real feed parser reads both feeds: well-formed, titles as plain text without control
    # characters or working merge keys, summaries as HTML.
    client = Client()
    topic = world.victim.topics.first()
    for path in ("/feeds/all.atom", f"/feeds/topics/{topic.slug}.atom"):
        # The battery's two papers: 2611.NNNNN (XSS everywhere) and 2611.NNNNNv2 (control characters).
        hostile = sorted((e for e in parse_feed(client, path).entries if e.id.startswith("https://arxiv.org/abs/2611.")),
                         key=lambda e: len(e.id))
        assert len(hostile) == 2
        for entry in hostile:
            assert entry.title_detail.type == "text/plain" and entry.summary_detail.type == "text/html"
            assert not any(ch in entry.title + entry.summary + entry.author for ch in hostile_cases.CONTROL_CHARACTERS)
            assert hostile_cases.MERGE_FORGERY not in json.dumps(entry, ensure_ascii=False)
            assert entry.link.startswith("https://")
        assert '"><script>alert("x")</script>' in hostile[0].title  # shown as text, as scraped
        assert hostile[1].title.startswith("Control characters [31mred %\u200bRECIPIENT.PREFERENCES_URL%")


def test_no_personal_data_on_any_archive_page_or_feed(topics, three_days):
    reader = make_subscriber("reader.private@example.org", topics=[topics["agents"]])
    sent_digest(reader, "mailgun")
    make_subscriber("pending.private@example.org", status=Subscriber.Status.PENDING, topics=[topics["code"]])
    secrets = {s.email for s in Subscriber.objects.all()} | {s.secret for s in Subscriber.objects.all()}
    secrets |= {tokens.make_token(reader, purpose) for purpose in (tokens.PREFERENCES, tokens.UNSUBSCRIBE)}
    secrets |= {tokens.make_token(reader, tokens.VIEW_DIGEST, {"d": d.pk}) for d in Delivery.objects.all()}
    # A flash message meant for one visitor (as a preferences page leaves it) waiting in a cookie.
    storage = CookieStorage(RequestFactory().get("/"))
    flash = storage._encode([Message(message_levels.SUCCESS, "Saved for reader.private@example.org")])

    paths = ["/archive/", "/archive/2026-11-21/", "/topics/agents/", "/topics/agents/?page=1", "/feeds/all.atom",
             "/feeds/topics/agents.atom", "/feeds/topics/code.atom"]
    # The reader first: a page rendered for them is cached and served to the next visitor.
    for visitor in ("reader with a message", "anonymous"):
        client = Client()
        if visitor != "anonymous":
            client.cookies["messages"] = flash
        for path in paths:
            response = client.get(path)
            body = response.content.decode()
            assert response.status_code == 200, path
            assert not [s for s in secrets if s in body] and "@example.org" not in body, (visitor, path)
            assert "Set-Cookie" not in response.headers and "Cookie" not in response.get("Vary", ""), (visitor, path)
    sample = Client().get("/").content.decode()
    assert not [s for s in secrets if s in sample] and "private@example.org" not in sample


# --- in a real browser -------------------------------------------------------------------------


@pytest.mark.browser
@pytest.mark.parametrize("device", [DESKTOP, PHONE], ids=lambda d: d["name"])
def test_archive_day_and_topic_pages_in_a_real_browser(device, chromium, live_server, transactional_db, topics):  # noqa: F811
    """The sample page scraped for real, a second day with a long unbroken title, then the
    sign-up sample, the index, a day and a topic page: no script, nothing wider than the
    screen, screenshots to look at."""
    assert scrape_file(SAMPLE_PAGE).status == "ok"
    yesterday = datetime.now(UTC).replace(hour=5, minute=0, second=0, microsecond=0) - timedelta(days=1)
    scrape(yesterday, [paper(1, "Supercalifragilistic" * 8 + " without a break", topics=("agents", "llm-reasoning"),
                             seen=yesterday, authors=[{"name": "Ada Lovelace"}, {"name": "Alan Turing"}],
                             github_repo="https://github.com/owner/repo", github_stars=1234, organization="Analytical Engines"),
                       paper(2, "A short one", seen=yesterday)])
    visit = Visit(chromium, live_server.url, {**device, "name": f"archive-{device['name']}"})
    page = visit.page
    try:
        page.goto("/")
        assert page.get_by_role("heading", name="A taste of the latest digest").is_visible()
        visit.snap("signup-sample")

        page.get_by_role("link", name="Browse the archive").click()
        page.get_by_role("heading", name="Archive", exact=True).wait_for()
        assert page.locator("ol.days > li").count() == 2
        visit.snap("index")

        page.locator("ol.days h3 a").first.click()
        page.get_by_role("heading", name=re.compile("^Trending on ")).wait_for()
        assert page.locator("li.paper").count() == 17
        visit.snap("day-scraped")

        page.get_by_role("link", name=re.compile("←")).click()  # the day before
        page.get_by_role("heading", name=re.compile("^Trending on ")).wait_for()
        assert page.locator("li.paper").count() == 2
        visit.snap("day-before")

        page.locator("li.paper ul.topics a", has_text="Agents and tool use").first.click()
        page.get_by_role("heading", name="Agents and tool use").wait_for()
        assert page.locator("li.paper").count() >= 2
        assert page.get_by_role("link", name="Atom feed").get_attribute("href") == "/feeds/topics/agents.atom"
        visit.snap("topic")
    finally:
        visit.close()
