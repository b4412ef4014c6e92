"""Issue 12: a personal Atom feed at a signed, revocable URL shown on the preferences page,
ranked like the reader's digest. Parsed by feedparser."""

import re

import feedparser
from django.test import Client

from newsletter.archive.personal import chosen_for
from newsletter.models import Paper, Vote

from .helpers import make_subscriber, path_of, preferences_path
from .test_feedback import papers


def feed_path_of(reader) -> str:
    page = Client().get(preferences_path(reader)).content.decode()
    [url] = re.findall(r'id="feed-url" value="([^"]+)"', page)
    return path_of(url)


def test_the_preferences_page_shows_a_personal_feed_ranked_like_the_digest(topics, make_scrape):
    make_scrape(papers(4))
    reader = make_subscriber("feeds@example.org", topics=[topics["code"]])
    path = feed_path_of(reader)
    assert path.startswith(f"/feeds/me/{reader.pk}.") and path.endswith(".atom")
    response = Client().get(path)
    assert response.status_code == 200 and response["Content-Type"].startswith("application/atom+xml")
    assert "private" in response["Cache-Control"]
    feed = feedparser.parse(response.content)
    assert not feed.bozo, feed.bozo_exception
    # Only the reader's topic (code: papers 1 and 3), in the order their digest would have.
    assert [e.id for e in feed.entries] == [f"https://arxiv.org/abs/{Paper.objects.get(pk=pk).arxiv_id}" for pk in chosen_for(reader)]
    assert {e.id for e in feed.entries} == {"https://arxiv.org/abs/2611.40001", "https://arxiv.org/abs/2611.40003"}
    # No personal data of the reader in the feed itself.
    assert reader.email not in response.content.decode()


def test_the_feed_follows_the_readers_votes(topics, make_scrape, settings):
    make_scrape(papers(4))
    reader = make_subscriber("votes@example.org", topics=[topics["agents"]])
    before = chosen_for(reader)
    assert len(before) == 4
    last = Paper.objects.get(pk=before[-1])
    Vote.objects.create(subscriber=reader, paper=last, value=Vote.MORE)
    from newsletter.personal.signals import reader_told_us
    from newsletter.tasks.personal import retrain_readers

    reader_told_us(reader.pk)
    retrain_readers([reader.pk])
    assert chosen_for(reader) != before, "a vote changes the feed's order as it changes the digest's"


def test_revoked_or_forged_feed_links_answer_404(topics, make_scrape):
    make_scrape(papers(2))
    reader = make_subscriber("revoke@example.org", topics=[topics["agents"]])
    path = feed_path_of(reader)
    other = make_subscriber("other@example.org", topics=[topics["agents"]])
    token = path.split("/")[-1].removesuffix(".atom")
    for bad in (token.replace(f"{reader.pk}.", f"{other.pk}.", 1), token[:-2], "1.x", "²." + token):
        assert Client().get(f"/feeds/me/{bad}.atom").status_code == 404, bad
    reader.revoke_links()
    assert Client().get(path).status_code == 404
    assert Client().get(feed_path_of(reader)).status_code == 200
