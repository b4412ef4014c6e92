"""The operator's dashboard through the test client: a fixed handful of aggregate queries
whatever the size of the list, every figure linked to an admin list that opens and holds
what the figure says, the same rates as the alerts, and counts kept warm by beat."""

import re
from datetime import timedelta
from html import unescape
from urllib.parse import parse_qsl, urlsplit

import pytest
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from newsletter import health
from newsletter.dashboard import metrics
from newsletter.dashboard.charts import percent
from newsletter.feedback import votes
from newsletter.feedback.tokens import FeedbackTarget
from newsletter.models import Delivery, FollowedAuthor, Paper, ReaderProfile, SeedPaper, Vote
from newsletter.tasks.dashboard import refresh_dashboard
from subscriptions import actions
from subscriptions.models import ConsentEvent, Subscriber

from .helpers import make_subscriber
from .support.dashboard_data import seed

pytestmark = pytest.mark.django_db
INDEX = reverse("admin:index")


def load(client):
    with CaptureQueriesContext(connection) as queries:
        response = client.get(INDEX)
    assert response.status_code == 200
    return response, len(queries)


def test_anonymous_visitors_are_sent_to_the_login_page(client):
    response = client.get(INDEX)
    assert response.status_code == 302 and response["Location"].startswith(reverse("admin:login"))


def test_a_few_queries_whatever_the_size_of_the_list(admin_client, topics):
    seed(subscribers=300, days=90)
    cache.clear()
    _, cold_small = load(admin_client)
    _, warm_small = load(admin_client)
    seed(subscribers=1500, days=90, email_domain="example.net")
    cache.clear()
    _, cold_large = load(admin_client)
    _, warm_large = load(admin_client)
    # Session and user, then: consent log (with topic leaves), deliveries, subscribers (3 for
    # the timeline + today's counts), scrapes (3), topics; reader feedback: votes (the days
    # before today, today), models, the slower personalisation figures (3), most voted papers.
    # Warm, the timeline, topics, earlier votes and slower figures come from the cache.
    assert cold_small == cold_large <= 21
    assert warm_small == warm_large <= 12


def test_the_page_is_branded_and_keeps_the_list_of_tables(admin_client, topics):
    seed(subscribers=200, days=30)
    page = load(admin_client)[0].content.decode()
    assert f"<title>Dashboard | {settings.SITE_NAME} admin</title>" in page
    assert f'<a href="{INDEX}">{settings.SITE_NAME}</a>' in page
    assert "Site administration" in page and reverse("admin:subscriptions_subscriber_changelist") in page
    assert "<script" not in page.split('id="content-main"')[1]  # the charts need no script


def figure_links(page: str) -> list[str]:
    dashboard = page.split('class="ops-section"')[0]
    return sorted({unescape(href) for href in re.findall(r'href="(/admin/[^"]+)"', dashboard)})


def test_every_figure_links_to_a_list_that_opens(admin_client, topics):
    seed(subscribers=400, days=60)
    page = load(admin_client)[0].content.decode()
    links = figure_links(page)
    assert len(links) > 300
    # One of each kind of link (same list, same filters): each opens without Django's
    # "invalid filter" redirect (?e=1).
    kinds = {}
    for href in links:
        parts = urlsplit(href)
        kinds.setdefault((parts.path, tuple(sorted(k for k, _ in parse_qsl(parts.query)))), href)
    assert len(kinds) >= 15
    for href in kinds.values():
        response = admin_client.get(href)
        assert response.status_code == 200, href
        assert "e=1" not in response.request["QUERY_STRING"], href


def listed(admin_client, href) -> int:
    response = admin_client.get(href)
    assert response.status_code == 200
    return response.context["cl"].result_count


def test_the_figures_match_the_lists_behind_them(admin_client, topics):
    seeded = seed(subscribers=500, days=60)
    page = load(admin_client)[0].content.decode()
    # A digest bar: the deliveries of that day and status.
    day = seeded.dates[-10].isoformat()
    value, href = re.search(rf'<a href="([^"]+)"><rect class="c-sent" [^>]*data-date="{day}" data-value="(\d+)"', page).group(2, 1)
    assert listed(admin_client, unescape(href)) == int(value)
    # A topic bar: its active readers.
    value, href = re.search(r'<a href="([^"]+)"><text class="tick name"[^>]*>LLM reasoning</text><rect[^>]*data-value="(\d+)"', page).group(2, 1)
    assert listed(admin_client, unescape(href)) == int(value) > 0
    # A point of the 7-day complaint rate: the complaints of those 7 days.
    rows = re.findall(r'<a href="([^"]+)"><circle class="dot c-rate7"[^>]*data-date="([^"]+)"', page)
    href, day = rows[-1]
    window = seeded.dates[-7:]
    expected = sum(c for d, c in zip(seeded.dates, seeded.complaints) if d in window)
    assert listed(admin_client, unescape(href)) == expected


def test_the_tiles_show_the_rates_the_alerts_use(admin_client, topics):
    seed(subscribers=600, days=40, spike_start=6, spike_end=0)
    board = load(admin_client)[0].context["dashboard"]
    tiles = {tile.label: tile for tile in board.tiles}
    complaints = health.complaint_rate()
    assert complaints.value > settings.HEALTH_COMPLAINT_RATE_MAX  # the seed's spike runs to today
    assert tiles["Complaint rate, 7 days"].value == percent(complaints.value)
    assert tiles["Complaint rate, 7 days"].state in ("warn", "bad")
    assert tiles["Bounce rate, 7 days"].value == percent(health.bounce_rate().value)
    assert tiles["Last good scrape"].value == "3 h ago" and tiles["Last good scrape"].state == "ok"
    assert tiles["Active readers"].value == f"{Subscriber.objects.filter(status='active').count():,}"


def test_today_is_live_and_closed_days_come_from_the_cache(admin_client, topics):
    seed(subscribers=300, days=30)
    first = load(admin_client)[0].context["dashboard"]
    before = next(t for t in first.tiles if t.label == "Active readers").value
    reader = Subscriber.objects.filter(status="active").first()
    actions.suppress(reader, Subscriber.Status.COMPLAINED, actions.SYSTEM)  # happens today
    window = metrics.Window.ending()
    assert metrics.consent_days(window).complaints[-1] == health.complaint_rate(1).events
    after = load(admin_client)[0].context["dashboard"]
    assert next(t for t in after.tiles if t.label == "Active readers").value != before


def test_beat_keeps_the_counts_warm(admin_client, topics):
    seed(subscribers=300, days=30)
    cache.clear()
    refresh_dashboard.delay()
    _, queries = load(admin_client)
    assert queries <= 12
    entry = settings.CELERY_BEAT_SCHEDULE["refresh-dashboard"]
    assert entry["task"] == refresh_dashboard.name


def test_a_new_installation_shows_an_empty_dashboard(admin_client):
    response, _ = load(admin_client)
    board = response.context["dashboard"]
    tiles = {tile.label: tile for tile in board.tiles}
    assert tiles["Active readers"].value == "0"
    assert tiles["Complaint rate, 7 days"].value == "–" and tiles["Complaint rate, 7 days"].note == "no sends"
    assert tiles["Last good scrape"].value == "never" and tiles["Last good scrape"].state == "bad"
    page = response.content.decode()
    assert page.count('data-threshold="0.001"') == 1 and page.count('data-threshold="0.003"') == 1  # the lines are drawn anyway


HOSTILE_TITLE = 'Attention <script>alert("t")</script><img src=x onerror=alert(1)> &amp; more'


def bar(page: str, css: str, day) -> int:
    """The value of a day's bar of one series (0 where none is drawn)."""
    found = re.search(rf'<rect class="{css}" [^>]*data-date="{day.isoformat()}" data-value="(\d+)"', page)
    return int(found.group(1)) if found else 0


def test_reader_feedback_matches_hand_made_data(admin_client, topics, make_scrape):
    make_scrape([
        {"arxiv_id": "2611.50001", "title": HOSTILE_TITLE, "topics": {"agents": 9.0}},
        {"arxiv_id": "2611.50002", "title": "Quiet paper", "topics": {"agents": 5.0, "code": 4.0}},
        {"arxiv_id": "2611.50003", "title": "Older paper", "topics": {"code": 4.0}},
    ])
    p1, p2, p3 = Paper.objects.order_by("arxiv_id")
    r0, r1, r2 = (make_subscriber(f"r{i}@example.org", topics=[topics["agents"], topics["code"]]) for i in range(3))
    gone = make_subscriber("gone@example.org", status=Subscriber.Status.UNSUBSCRIBED, outside_topics=True)
    now = timezone.now()
    today = timezone.localdate(now)
    earlier = today - timedelta(days=3)

    def target(reader, paper):
        delivery, _ = Delivery.objects.get_or_create(subscriber=reader, digest_date=today)
        return FeedbackTarget(delivery, paper)

    def cast(reader, paper, value, days_ago=0):
        votes.record(target(reader, paper), value)
        if days_ago:  # as if cast then: the dashboard reads the day a vote was last set
            Vote.objects.filter(subscriber=reader, paper=paper).update(updated_at=now - timedelta(days=days_ago))

    cast(r0, p1, Vote.MORE, 3)
    cast(r1, p1, Vote.MORE, 3)
    cast(r1, p2, Vote.LESS, 3)
    cast(r2, p2, Vote.MORE, 3)
    cast(r2, p3, Vote.MORE, 10)  # in the window, not in the last 7 days
    cast(r2, p2, Vote.LESS)  # changed today: one Less today, nothing left on its first day
    cast(r0, p2, Vote.LESS)
    cast(r0, p3, Vote.MORE)
    votes.undo(target(r0, p3))  # undone: counted nowhere
    votes.leave_topic(target(r0, p2), topics["code"], actions.SYSTEM)
    actions.log_event(r1, ConsentEvent.Kind.PREFERENCES, actions.SYSTEM, method="page")  # not a topic leave

    # Models: r0's trained after its last signal; r1's trained, then told us more 2 hours ago
    # (waiting); r2's never trained (waiting since 30 minutes); the unsubscribed reader's
    # trained model is not an active reader's, but its wait would count (the retrain queue).
    ReaderProfile.objects.filter(subscriber=r0).update(signal_at=now - timedelta(hours=3), trained_at=now - timedelta(hours=1))
    ReaderProfile.objects.filter(subscriber=r1).update(signal_at=now - timedelta(hours=2), trained_at=now - timedelta(hours=5))
    ReaderProfile.objects.filter(subscriber=r2).update(signal_at=now - timedelta(minutes=30), trained_at=None)
    ReaderProfile.objects.create(subscriber=gone, signal_at=now - timedelta(days=9), trained_at=now - timedelta(days=8))
    FollowedAuthor.objects.create(subscriber=r0, name="Ada Lovelace")
    FollowedAuthor.objects.create(subscriber=r0, name="Alan Turing")
    FollowedAuthor.objects.create(subscriber=gone, name="Grace Hopper")
    SeedPaper.objects.create(subscriber=r1, arxiv_id="2611.99999")
    SeedPaper.objects.create(subscriber=r1, arxiv_id="2611.50001", paper=p1)
    SeedPaper.objects.create(subscriber=gone, arxiv_id="2611.99998")
    Subscriber.objects.filter(pk=r2.pk).update(outside_topics=True)

    response, _ = load(admin_client)
    page = response.content.decode()
    board = response.context["dashboard"]
    assert [panel.key for panel in board.feedback] == ["votes", "topic-leaves", "personalisation", "most-voted"]

    window = metrics.Window.ending(now)
    days = metrics.vote_days(window)
    on = {earlier: window.index(earlier), today: window.index(today), today - timedelta(days=10): window.index(today - timedelta(days=10))}
    assert [(days.more[i], days.less[i], days.readers[i]) for i in on.values()] == [(2, 1, 2), (0, 2, 2), (1, 0, 1)]
    assert sum(days.more) == 3 and sum(days.less) == 3
    assert (bar(page, "c-more", earlier), bar(page, "c-less", earlier), bar(page, "c-less", today)) == (2, 1, 2)
    assert metrics.consent_days(window).topic_leaves[-1] == 1 and sum(metrics.consent_days(window).topic_leaves) == 1
    assert bar(page, "c-leave", today) == 1

    figures = {figure.label: figure for figure in next(p for p in board.feedback if p.key == "personalisation").figures}
    assert figures["Readers with a trained model"].value == "2"
    waiting = figures["Models waiting for retraining"]
    assert (waiting.value, waiting.note, waiting.state) == ("2", "the oldest for 2 h", "warn")
    assert figures["Readers following an author"].value == "1"
    assert figures["Seed papers not stored yet"].value == "1"
    assert figures["Opted in to “outside your topics”"].value == "1"

    # Most voted in 7 days: p2 (three Less), then p1 (two More); p3's only standing vote is older.
    table = next(p for p in board.feedback if p.key == "most-voted").table
    assert [[cell.text for cell in row] for row in table.rows] == [["Quiet paper", "0", "3"], [HOSTILE_TITLE, "2", "0"]]
    assert table.rows[1][0].href == reverse("admin:newsletter_paper_change", args=[p1.pk])
    # The scraped title is shown as text, never as markup.
    assert "<script>alert" not in page and "<img src=x" not in page
    assert "Attention &lt;script&gt;alert(&quot;t&quot;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt; &amp;amp; more" in page

    # The figures' lists hold what they say.
    assert listed(admin_client, unescape(re.search(r'<a href="([^"]+)"><rect class="c-more" [^>]*data-date="' + earlier.isoformat(), page).group(1))) == 2
    assert listed(admin_client, unescape(table.rows[0][2].href)) == 3
    assert listed(admin_client, unescape(table.rows[1][1].href)) == 2
    leave_href = re.search(r'<a href="([^"]+)"><rect class="c-leave"', page).group(1)
    assert listed(admin_client, unescape(leave_href)) == 1
    assert listed(admin_client, figures["Opted in to “outside your topics”"].href) == 1


def test_reader_feedback_on_an_empty_list(admin_client):
    board = load(admin_client)[0].context["dashboard"]
    figures = {figure.label: figure for figure in next(p for p in board.feedback if p.key == "personalisation").figures}
    assert figures["Models waiting for retraining"].note == "none waiting"
    assert next(p for p in board.feedback if p.key == "most-voted").table.rows == []


def test_staff_see_only_the_feedback_they_may_see(client, django_user_model):
    from django.contrib.auth.models import Permission

    Vote.objects.create(subscriber=make_subscriber(), paper=Paper.objects.create(arxiv_id="2611.50009", title="Voted"), value=Vote.MORE)
    someone = django_user_model.objects.create_user("someone", password="pw-someone-123", is_staff=True)
    someone.user_permissions.add(Permission.objects.get(codename="view_subscriber"))
    client.force_login(someone)
    board = load(client)[0].context["dashboard"]
    assert [panel.key for panel in board.feedback] == ["personalisation"]  # no votes, no consent log
    someone.user_permissions.add(Permission.objects.get(codename="view_vote"))
    someone = django_user_model.objects.get(pk=someone.pk)  # permissions are cached per user object
    client.force_login(someone)
    board = load(client)[0].context["dashboard"]
    assert [panel.key for panel in board.feedback] == ["votes", "personalisation", "most-voted"]
    # Without the paper list's permission, a title is not a link to it.
    [row] = next(p for p in board.feedback if p.key == "most-voted").table.rows
    assert (row[0].text, row[0].href, row[1].text) == ("Voted", None, "1")
