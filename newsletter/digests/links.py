"""Each recipient's own part of a digest: signed links and the List-Unsubscribe headers.

Everything else in a digest is shared by every recipient of the same papers; these values are
merged in per recipient (by the provider from merge data, or by us for SMTP). URL patterns
are resolved once; only the signing is per recipient.
"""

from dataclasses import dataclass
from datetime import date
from functools import cached_property, lru_cache
from urllib.parse import quote, urlsplit

from django.conf import settings
from django.urls import reverse
from django.utils.dateformat import format as format_date
from django.utils.html import escape

from newsletter.feedback import tokens as feedback_tokens
from subscriptions import tokens

_SLOT = "TOKEN-SLOT"

# The names of the per-recipient merge fields, as used in the templates.
# The date is one too: at any moment subscribers are on two local dates, and they should
# still share one rendering.
MERGE_FIELDS = ("preferences_url", "unsubscribe_url", "view_url", "topics_html", "topics_text", "date", "date_short")


@dataclass(frozen=True)
class Recipient:
    """What rendering and sending need to know about one delivery."""

    delivery_id: int
    subscriber_id: int
    email: str
    secret: str
    topic_names: tuple[str, ...]
    digest_date: date

    # tokens.make_token() reads .pk and .secret
    @property
    def pk(self) -> int:
        return self.subscriber_id


@lru_cache(maxsize=64)
def date_label(day: date) -> str:
    return format_date(day, "l j F Y")


@lru_cache(maxsize=64)
def short_date_label(day: date) -> str:
    """"30 Nov", for the subject line."""
    return format_date(day, "j M")


def list_id() -> str:
    if settings.DIGEST_LIST_ID:
        return settings.DIGEST_LIST_ID
    host = urlsplit(settings.SITE_URL).hostname or "localhost"
    name = " ".join(settings.SITE_NAME.split()).replace("<", "").replace(">", "")
    return f"{name} <digest.{host}>"


class LinkMaker:
    """Builds the merge values of many recipients with the URL patterns resolved once."""

    @cached_property
    def _patterns(self):
        return {
            "preferences": reverse("subscriptions:preferences", args=[_SLOT]).split(_SLOT),
            "unsubscribe": reverse("subscriptions:unsubscribe", args=[_SLOT]).split(_SLOT),
            "view": reverse("view_digest", args=[_SLOT]).split(_SLOT),
        }

    def _url(self, name: str, token: str) -> str:
        before, after = self._patterns[name]
        return f"{settings.SITE_URL}{before}{token}{after}"

    def unsubscribe_url(self, recipient) -> str:
        return self._url("unsubscribe", tokens.make_token(recipient, tokens.UNSUBSCRIBE))

    def merge_values(self, recipient: Recipient, paper_ids=()) -> dict[str, str]:
        """The recipient's values of every merge field, the feedback token of each of
        `paper_ids` (the digest's papers: rendering.feedback_field) included."""
        topics = ", ".join(recipient.topic_names)
        values = {
            "preferences_url": self._url("preferences", tokens.make_token(recipient, tokens.PREFERENCES)),
            "unsubscribe_url": self.unsubscribe_url(recipient),
            "view_url": self._url("view", tokens.make_token(recipient, tokens.VIEW_DIGEST, {"d": recipient.delivery_id})),
            "topics_html": escape(topics),
            "topics_text": topics,
            "date": date_label(recipient.digest_date),
            "date_short": short_date_label(recipient.digest_date),
        }
        for paper_id in paper_ids:
            values[f"fb_{paper_id}"] = feedback_tokens.make(recipient.subscriber_id, recipient.delivery_id, paper_id)
        return values

    def web_copy_values(self, recipient: Recipient, paper_ids=()) -> dict[str, str]:
        """The values for the web copy ("view in browser"), a page that gets forwarded and
        shared: no link in it may act for the reader. Preferences and unsubscribe lead to the
        form that emails a preferences link to the address itself; so do the votes."""
        public = f"{settings.SITE_URL}{reverse('subscriptions:email_preferences_link')}"
        values = self.merge_values(recipient)
        values.update(preferences_url=public, unsubscribe_url=public, view_url=f"{settings.SITE_URL}/")
        values.update({f"fb_{paper_id}": feedback_tokens.WEB_COPY for paper_id in paper_ids})
        return values

    @staticmethod
    def headers(merge_values: dict[str, str]) -> dict[str, str]:
        """Per-recipient headers (RFC 2369 / RFC 8058)."""
        targets = [f"<{merge_values['unsubscribe_url']}>"]
        if settings.LIST_UNSUBSCRIBE_MAILTO:
            token = merge_values["unsubscribe_url"].rstrip("/").rsplit("/", 1)[-1]
            subject = quote(f"unsubscribe {token}")
            targets.insert(0, f"<mailto:{settings.LIST_UNSUBSCRIBE_MAILTO}?subject={subject}>")
        return {"List-Unsubscribe": ", ".join(targets)}


def static_headers() -> dict[str, str]:
    """Headers every digest carries."""
    return {"List-Unsubscribe-Post": "List-Unsubscribe=One-Click", "List-Id": list_id(), "Precedence": "bulk"}
