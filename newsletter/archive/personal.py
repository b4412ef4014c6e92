"""A reader's own Atom feed: the papers of the last week, chosen and ranked as their digest
would be (their topics, DIGEST_RANKING with their votes, follows and words), for people who
would rather read in a feed reader than get email.

Its address carries a signed token bound to the reader's link secret: "Revoke preference
links" in the admin (or erasing the reader) kills it, and a token that fails answers 404.
Unlike the public feeds nothing here is cached for others: the body is personal
(Cache-Control: private), and the token is blanked in logs like every other
(subscriptions/token_redaction.py)."""

from dataclasses import dataclass

from django.conf import settings
from django.http import Http404
from django.utils import timezone
from django.views.decorators.cache import cache_control

from newsletter.digests import selection
from newsletter.models import Delivery
from subscriptions import tokens

from . import queries
from .feeds import PapersFeed, Subject, absolute
from .papers import present
from .state import ArchiveState

FEED_ENTRIES = 30


class PersonalFeed(PapersFeed):
    def get_object(self, request, token):
        try:
            subscriber, _ = tokens.read_token(token, tokens.FEED)
        except tokens.InvalidToken:
            raise Http404 from None
        return PersonalSubject(ArchiveState.current(), None, subscriber, token)

    def title(self, subject):
        return f"{settings.SITE_NAME}: your papers"

    def subtitle(self, subject):
        return "The week's trending papers in your topics, best first for you, as your digest ranks them."

    def link(self, subject):
        return absolute("/")

    def feed_url(self, subject):
        return absolute(f"/feeds/me/{subject.token}.atom")

    def items(self, subject):
        ids = chosen_for(subject.subscriber)
        return present(queries.papers_by_id(ids, subject.state.topic_ids), subject.state.topics_by_id)


@dataclass(frozen=True)
class PersonalSubject(Subject):
    subscriber: object = None
    token: str = ""


def chosen_for(subscriber, now=None) -> tuple[int, ...]:
    """The reader's papers of the last seven days, best first by their digest's ranking
    (what they were emailed counts too: a feed reader may not read email)."""
    topic_ids, _ = selection.topics_of([subscriber.pk]).get(subscriber.pk, ((), ()))
    pools, _ = selection.pools_for([Delivery.Kind.WEEKLY], now)
    if not pools:
        return ()
    reader = selection.Reader(subscriber.pk, Delivery.Kind.WEEKLY, timezone.localdate(now), topic_ids,
                              max(FEED_ENTRIES, subscriber.papers_per_email))
    [chosen] = selection.choose([reader], pools, history=False)
    return tuple(chosen)


personal_feed = cache_control(private=True, max_age=900)(PersonalFeed())
