"""Atom feeds of the papers that trended most recently: all of them, or one topic's
(django.contrib.syndication with Atom1Feed).

An entry's id is the paper's arXiv URL: it names the paper itself, so it stays the same
across scrapes, feeds, database rows and changes of our own address, and a feed reader shows
a paper that trends again as the entry it already has. Entries are dated by when the paper
first trended here, which no later scrape changes. Every link is absolute and built from
SITE_URL, never from the request's Host (the body is cached and served to everyone)."""

from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from django.conf import settings
from django.contrib.syndication.views import Feed
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.feedgenerator import Atom1Feed

from newsletter.app_settings import app_settings

from . import queries
from .caching import archive_page
from .papers import clean_text, present
from .state import ArchiveState, TopicRow, state_of


def absolute(path: str) -> str:
    return f"{settings.SITE_URL}{path}"


@dataclass(frozen=True)
class Subject:
    """What one request's feed is of: the archive state read for it, and the topic (None: all).
    (The Feed instance serves every request, so nothing per request is kept on it.)"""

    state: ArchiveState
    topic: TopicRow | None


class PapersFeed(Feed):
    feed_type = Atom1Feed

    def get_object(self, request, *args, **kwargs):
        state = state_of(request)
        return Subject(state, state.topic(kwargs["slug"]) if "slug" in kwargs else None)

    # --- the feed ---

    def title(self, subject):
        topic = subject.topic
        return f"{settings.SITE_NAME}: {clean_text(topic.name)}" if topic else f"{settings.SITE_NAME}: trending AI papers"

    def subtitle(self, subject):
        topic = subject.topic
        what = f"in {clean_text(topic.name)} " if topic else ""
        return f"Papers {what}trending on Hugging Face, newest first, with their topics."

    def link(self, subject):
        topic = subject.topic
        return absolute(reverse("archive:topic", args=[topic.slug]) if topic else reverse("archive:index"))

    def feed_url(self, subject):
        topic = subject.topic
        return absolute(reverse("archive:feed_topic", args=[topic.slug]) if topic else reverse("archive:feed_all"))

    def feed_guid(self, subject):
        return self.feed_url(subject)

    def author_name(self):
        return settings.SITE_NAME

    def items(self, subject):
        state, topic = subject.state, subject.topic
        ids = queries.newest_paper_ids(topic.pk if topic else None)[: app_settings.ARCHIVE_FEED_ENTRIES]
        return present(queries.papers_by_id(ids, state.topic_ids), state.topics_by_id)

    # --- each entry: a papers.ArchivedPaper, already cleaned ---

    def item_title(self, paper):
        return paper.title

    def item_link(self, paper):
        return paper.paper_url or paper.arxiv_url

    def item_guid(self, paper):
        # (An id the parser would not have stored makes no arXiv URL: a tag URI of our own then.)
        return paper.arxiv_url or f"tag:{urlsplit(settings.SITE_URL).hostname},2026:papers/{quote(paper.arxiv_id)}"

    def item_description(self, paper):
        return render_to_string("archive/feed_entry.html", {"paper": paper, "SITE_URL": settings.SITE_URL})

    def item_author_name(self, paper):
        return paper.authors_line or None

    def item_pubdate(self, paper):
        return paper.first_seen_at

    def item_updateddate(self, paper):
        return paper.first_seen_at

    def item_categories(self, paper):
        return [topic.name for topic in paper.topics]


# /feeds/all.atom and /feeds/topics/<slug>.atom (the slug picks the topic).
papers_feed = archive_page(PapersFeed())
