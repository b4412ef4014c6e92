"""The operator's dashboard through the test client: a fixed handful of aggregate queries
whatever the size of the list, every figure linked to an admin list that opens and holds
what the figure says, the same rates as the alerts, and counts kept warm by beat."""

import re
from html import unescape
from urllib.parse import parse_qsl, urlsplit

import pytest
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from newsletter import health
from newsletter.dashboard import metrics
from newsletter.dashboard.charts import percent
from newsletter.tasks.dashboard import refresh_dashboard
from subscriptions import actions
from subscriptions.models import Subscriber

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
    # Session and user, then: consent log, deliveries, subscribers (3 for the timeline + today's
    # counts), scrapes (3), topics. Warm, the timeline and topics come from the cache.
    assert cold_small == cold_large <= 14
    assert warm_small == warm_large <= 9


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
    assert queries <= 9
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
