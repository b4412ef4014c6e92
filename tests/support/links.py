"""Reading links and tokens out of the emails and pages the site produces."""

import html
import re
from html.parser import HTMLParser

from subscriptions import tokens

LINK_RE = re.compile(r"https?://[^\s\"'<>]+")
# A subscriber's token in a link: /preferences/<t>/, /unsubscribe/<t>/, /confirm/<t>/, /digest/<t>/,
# /feedback/<t>/ (the web copy's /feedback/web-copy/ acts for nobody).
PERSONAL_LINK_RE = re.compile(r"/(?:preferences|unsubscribe|confirm|digest|feedback(?!/web-copy/))/[^/\s\"'<>]+/")


def links_in(text: str, path_part: str) -> list[str]:
    return [u for u in LINK_RE.findall(text) if path_part in u]


def path_of(url: str) -> str:
    return re.sub(r"^https?://[^/]+", "", url)


def email_text(message) -> str:
    """Plain-text body of a django EmailMessage (locmem outbox) or an email.message.EmailMessage."""
    if hasattr(message, "body"):
        return message.body
    return message.get_body(preferencelist=("plain",)).get_content()


def preferences_path(subscriber) -> str:
    return path_of(tokens.preferences_url(subscriber))


def unsubscribe_path(subscriber) -> str:
    return path_of(tokens.unsubscribe_url(subscriber))


def personal_links(page: str) -> list[str]:
    """The links in a page or email that carry someone's token (the bare /preferences/ form does not)."""
    return PERSONAL_LINK_RE.findall(page)


def working_tokens_in(text: str, subscriber) -> set[str]:
    """Every token in `text` (HTML-escaped or not) that opens something of `subscriber`'s:
    their preferences, their unsubscribe link or one of their digests."""
    found = set()
    text = html.unescape(html.unescape(text))  # an email shown in a srcdoc attribute is escaped twice
    for candidate in set(re.findall(rf"\b{subscriber.pk}\.[\w:.-]+", text)):
        for purpose in (tokens.PREFERENCES, tokens.UNSUBSCRIBE, tokens.VIEW_DIGEST):
            try:
                tokens.read_token(candidate, purpose)
            except tokens.InvalidToken:
                continue
            found.add(candidate)
    return found


def unsubscribe_url_of(message) -> str:
    """The one-click HTTPS URL in a received message's List-Unsubscribe header (`headers` as a
    dict, as the fake providers keep them)."""
    [url] = re.findall(r"<(https?://[^>]+)>", message.headers["List-Unsubscribe"])
    return url


class _FeedLinkParser(HTMLParser):
    def __init__(self):
        super().__init__()
        self.in_head, self.feeds = False, []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "head":
            self.in_head = True
        elif tag == "link" and self.in_head and attrs.get("rel") == "alternate" and attrs.get("type") == "application/atom+xml":
            self.feeds.append((attrs.get("title"), attrs.get("href")))

    def handle_endtag(self, tag):
        if tag == "head":
            self.in_head = False


def feed_links(page: str) -> list[tuple[str, str]]:
    """The Atom feeds a page's <head> announces (autodiscovery), as (title, href) in page order."""
    parser = _FeedLinkParser()
    parser.feed(page)
    return parser.feeds
