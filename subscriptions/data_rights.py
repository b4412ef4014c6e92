"""A person's rights over their data (GDPR art. 15, 17 and 20), from their preferences page
or by staff on their request (subscriptions/admin_data_rights.py).

- `export`: everything we keep about one subscriber as one JSON-ready dict: the subscriber,
  their topics and settings, the consent log, every digest (date and papers) and what they
  told us (votes, followed authors, seed papers, their own words). The download itself is
  written to the consent log first, so the file shows it.
- `erase`: the person is gone: subscriber row, consent log, deliveries, votes, follows, seed
  papers and reader model. The consent log is append-only and protects its subscriber, so it
  is removed here on purpose, and an `Erasure` row takes its place: a keyed hash of the
  address (no address, no IP), the time, who asked and how much was removed. A later
  sign-up with the address is new; `erasures_of(address)` still proves the erasure.
"""

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.crypto import salted_hmac

from newsletter.models import DigestItem

from .actions import Origin, log_event
from .models import ConsentEvent, Erasure, Subscriber

FORMAT = "trending-papers-digest/my-data/1"
READER = "preferences page"


def _when(value):
    return value.isoformat() if value else None


def address_hash(email: str, secret: str | None = None) -> str:
    """HMAC-SHA256 of the address (case folded: the address is unique case-insensitively),
    keyed with SECRET_KEY: without the key no one can test a list of addresses against it."""
    key_salt = "subscriptions.data_rights.erasure"
    return salted_hmac(key_salt, email.strip().lower(), secret=secret or settings.SECRET_KEY, algorithm="sha256").hexdigest()


def erasures_of(email: str):
    """The erasure records of `email` (under the current SECRET_KEY or a fallback)."""
    secrets = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    return Erasure.objects.filter(address_hash__in=[address_hash(email, secret) for secret in secrets])


# --- Download my data ----------------------------------------------------------------------

@transaction.atomic
def export(subscriber: Subscriber, origin: Origin, by: str = READER) -> dict:
    """Log the download, then return everything we keep about `subscriber`."""
    subscriber = Subscriber.objects.select_for_update().get(pk=subscriber.pk)
    log_event(subscriber, ConsentEvent.Kind.EXPORT, origin, by=by)
    return {
        "format": FORMAT,
        "exported_at": timezone.now().isoformat(),
        "subscriber": {
            "email": subscriber.email,
            "status": subscriber.status,
            "created_at": _when(subscriber.created_at),
            "confirmed_at": _when(subscriber.confirmed_at),
            "unsubscribed_at": _when(subscriber.unsubscribed_at),
            "updated_at": _when(subscriber.updated_at),
        },
        "topics": [{"slug": t.slug, "name": t.name} for t in subscriber.topics.order_by("slug")],
        "settings": {
            "frequency": subscriber.frequency,
            "weekday": subscriber.get_weekday_display(),
            "send_hour": subscriber.send_hour,
            "timezone": subscriber.timezone,
            "papers_per_email": subscriber.papers_per_email,
            "paused": subscriber.paused,
            "outside_topics": subscriber.outside_topics,
        },
        "consent_log": [
            {"at": _when(e.created_at), "kind": e.kind, "ip_address": e.ip_address, "user_agent": e.user_agent,
             "details": e.details}
            for e in subscriber.consent_events.order_by("created_at", "pk")
        ],
        "deliveries": _deliveries(subscriber),
        "feedback": _feedback(subscriber),
    }


def _deliveries(subscriber: Subscriber) -> list[dict]:
    deliveries = list(subscriber.deliveries.order_by("digest_date", "pk"))
    papers: dict[int, list[dict]] = {}
    items = (DigestItem.objects.filter(content_id__in={d.content_id for d in deliveries if d.content_id})
             .order_by("content_id", "position").values_list("content_id", "paper__arxiv_id", "paper__title"))
    for content_id, arxiv_id, title in items:
        papers.setdefault(content_id, []).append({"arxiv_id": arxiv_id, "title": title})
    return [
        {"date": d.digest_date.isoformat(), "kind": d.kind, "status": d.status, "sent_at": _when(d.sent_at),
         "papers": papers.get(d.content_id, [])}
        for d in deliveries
    ]


def _feedback(subscriber: Subscriber) -> dict:
    profile = getattr(subscriber, "reader_profile", None)
    return {
        "interests": subscriber.interests,
        "votes": [
            {"arxiv_id": v.paper.arxiv_id, "title": v.paper.title, "vote": "more" if v.value > 0 else "less",
             "at": _when(v.updated_at), "digest_date": v.delivery.digest_date.isoformat() if v.delivery else None}
            for v in subscriber.votes.select_related("paper", "delivery").order_by("created_at", "pk")
        ],
        "followed_authors": [{"name": f.name, "since": _when(f.created_at)} for f in subscriber.followed_authors.order_by("created_at", "pk")],
        "seed_papers": [
            {"arxiv_id": s.arxiv_id, "title": s.paper.title if s.paper else None, "since": _when(s.created_at)}
            for s in subscriber.seed_papers.select_related("paper")
        ],
        # The model learned from all of the above (newsletter/personal/): when, and its weights.
        "reader_model": None if profile is None else {
            "signal_at": _when(profile.signal_at), "trained_at": _when(profile.trained_at),
            "version": profile.version, "model": profile.model,
        },
    }


# --- Delete my data ------------------------------------------------------------------------

@transaction.atomic
def erase(subscriber: Subscriber, origin: str = READER) -> Erasure:
    """Erase the person behind `subscriber` and leave only an Erasure record (see above).
    `origin`: READER, or "admin:<staff username>"."""
    subscriber = Subscriber.objects.select_for_update().get(pk=subscriber.pk)
    removed = {
        "consent_events": subscriber.consent_events.count(),
        "deliveries": subscriber.deliveries.count(),
        "votes": subscriber.votes.count(),
        "followed_authors": subscriber.followed_authors.count(),
        "seed_papers": subscriber.seed_papers.count(),
    }
    # ConsentEvent.delete() refuses (the log is append-only while its subscriber exists); a
    # queryset delete is one SQL DELETE that does not call it: erasure is the one exception.
    ConsentEvent.objects.filter(subscriber=subscriber).delete()
    erasure = Erasure.objects.create(address_hash=address_hash(subscriber.email), origin=origin[:200], removed=removed)
    subscriber.delete()  # deliveries, votes, follows, seed papers, reader model: CASCADE
    return erasure
