"""Every change of a subscriber's state goes through here, so each one is written to the
consent log in the same transaction. The follow-up emails are queued after commit, by the
caller when the change runs in a task (request_signup says which email it calls for)."""

from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from newsletter.client_ip import client_ip

from .models import ConsentEvent, Subscriber, Topic, available_timezones, normalize_email


@dataclass(frozen=True)
class Origin:
    """Who asked for a change: kept in the consent log as proof."""

    ip_address: str | None = None
    user_agent: str = ""

    @classmethod
    def from_request(cls, request) -> "Origin":
        return cls(
            ip_address=client_ip(request),  # behind a proxy: the client, not the proxy
            user_agent=request.META.get("HTTP_USER_AGENT", "")[:512],
        )


SYSTEM = Origin(user_agent="system")


def log_event(subscriber: Subscriber, kind: str, origin: Origin, **details) -> ConsentEvent:
    return ConsentEvent.objects.create(
        subscriber=subscriber,
        kind=kind,
        ip_address=origin.ip_address,
        user_agent=origin.user_agent,
        details=details,
    )


def signup_choices(topics, frequency: str, timezone: str = "", weekday: int | None = None) -> dict:
    """The choices made on the sign-up form, kept with the sign-up in the consent log; its
    confirmation link names that row and applies them. A day only for a weekly digest."""
    choices = {"topics": sorted(t.slug for t in topics), "frequency": frequency}
    if timezone:
        choices["timezone"] = timezone
    if weekday is not None and frequency == Subscriber.Frequency.WEEKLY:
        choices["weekday"] = weekday
    return choices


# Addresses the mail system gave up on: no public request may mail them or change them.
SUPPRESSED = (Subscriber.Status.BOUNCED, Subscriber.Status.COMPLAINED)


@dataclass(frozen=True)
class SignupMail:
    """The email a sign-up calls for: the confirmation link of sign-up `signup_id`, or (None)
    "you are already subscribed"."""

    subscriber_id: int
    signup_id: int | None = None


@transaction.atomic
def request_signup(email: str, topics, frequency: str, origin: Origin, timezone: str = "",
                   weekday: int | None = None) -> SignupMail | None:
    """Record a sign-up and say which email it calls for (runs in a worker: the form has
    answered already, the same for every address). A new or unsubscribed address becomes
    pending and gets a confirmation link for this sign-up; an active one is told it is
    subscribed; a bounced or complained one is left alone and mailed nothing (None)."""
    email = normalize_email(email)
    timezone = timezone if timezone in available_timezones() else ""
    weekday = weekday if weekday in Subscriber.Weekday.values else None
    details = signup_choices(topics, frequency, timezone, weekday)
    defaults = {"email": email, "frequency": frequency, "timezone": timezone or "UTC"}
    if "weekday" in details:
        defaults["weekday"] = weekday
    subscriber, created = Subscriber.objects.select_for_update().get_or_create(email__iexact=email, defaults=defaults)
    if created:
        subscriber.topics.set(topics)
    else:
        details["previous_status"] = subscriber.status
    if subscriber.status == Subscriber.Status.ACTIVE:
        return SignupMail(subscriber.pk)
    signup = log_event(subscriber, ConsentEvent.Kind.SIGNUP, origin, **details)
    if subscriber.status in SUPPRESSED:
        return None
    if subscriber.status == Subscriber.Status.UNSUBSCRIBED:
        # Receives nothing either way; only this sign-up's link can make it active again.
        subscriber.status = Subscriber.Status.PENDING
        subscriber.save(update_fields=["status", "updated_at"])
    return SignupMail(subscriber.pk, signup.pk)


def open_signup(subscriber: Subscriber, signup_id) -> ConsentEvent | None:
    """The sign-up a confirmation link was made for, while it can still be confirmed: the
    address is pending and nothing but more sign-ups happened since. So a link works once
    (confirming closes it) and none outlives an unsubscribe, a bounce or a complaint."""
    if subscriber.status != Subscriber.Status.PENDING or type(signup_id) is not int:
        return None
    events = subscriber.consent_events.all()
    signup = events.filter(pk=signup_id, kind=ConsentEvent.Kind.SIGNUP).first()
    if signup is None or events.filter(pk__gt=signup_id).exclude(kind=ConsentEvent.Kind.SIGNUP).exists():
        return None
    return signup


@transaction.atomic
def confirm(subscriber: Subscriber, signup_id: int, origin: Origin) -> bool:
    """Activate after double opt-in with the choices of that sign-up. Returns False (and
    changes nothing) unless the sign-up is still open (see open_signup)."""
    subscriber = Subscriber.objects.select_for_update().get(pk=subscriber.pk)
    signup = open_signup(subscriber, signup_id)
    if signup is None:
        return False
    choices = signup.details
    # A reader coming back (confirmed before, or unsubscribed when signing up) resubscribes.
    returning = subscriber.confirmed_at is not None or choices.get("previous_status") == Subscriber.Status.UNSUBSCRIBED
    subscriber.status = Subscriber.Status.ACTIVE
    subscriber.paused = False
    subscriber.confirmed_at = timezone.now()
    subscriber.unsubscribed_at = None
    if choices.get("frequency") in Subscriber.Frequency.values:
        subscriber.frequency = choices["frequency"]
    if choices.get("timezone") in available_timezones():
        subscriber.timezone = choices["timezone"]
    if choices.get("weekday") in Subscriber.Weekday.values:
        subscriber.weekday = choices["weekday"]
    subscriber.save()
    topics = Topic.objects.filter(slug__in=choices.get("topics", []), active=True)
    if topics:
        subscriber.topics.set(topics)
    kind = ConsentEvent.Kind.RESUBSCRIBE if returning else ConsentEvent.Kind.CONFIRM
    log_event(subscriber, kind, origin, previous_status=Subscriber.Status.PENDING,
              **signup_choices(subscriber.topics.all(), subscriber.frequency))
    return True


@transaction.atomic
def unsubscribe(subscriber: Subscriber, origin: Origin, method: str) -> bool:
    """Idempotent: returns False (and logs nothing) if the subscriber already receives nothing."""
    subscriber = Subscriber.objects.select_for_update().get(pk=subscriber.pk)
    if subscriber.status in (Subscriber.Status.UNSUBSCRIBED, Subscriber.Status.BOUNCED, Subscriber.Status.COMPLAINED):
        return False
    was = subscriber.status
    subscriber.status = Subscriber.Status.UNSUBSCRIBED
    subscriber.unsubscribed_at = timezone.now()
    subscriber.save(update_fields=["status", "unsubscribed_at", "updated_at"])
    log_event(subscriber, ConsentEvent.Kind.UNSUBSCRIBE, origin, method=method, previous_status=was)
    return True


@transaction.atomic
def resubscribe(subscriber: Subscriber, origin: Origin) -> bool:
    """From the preferences page: the link proves the mailbox, so no second opt-in is needed."""
    subscriber = Subscriber.objects.select_for_update().get(pk=subscriber.pk)
    if subscriber.status != Subscriber.Status.UNSUBSCRIBED:
        return False
    subscriber.status = Subscriber.Status.ACTIVE
    subscriber.unsubscribed_at = None
    subscriber.confirmed_at = subscriber.confirmed_at or timezone.now()
    subscriber.save(update_fields=["status", "unsubscribed_at", "confirmed_at", "updated_at"])
    log_event(subscriber, ConsentEvent.Kind.RESUBSCRIBE, origin, method="preferences")
    return True


@transaction.atomic
def set_paused(subscriber: Subscriber, paused: bool, origin: Origin) -> bool:
    subscriber = Subscriber.objects.select_for_update().get(pk=subscriber.pk)
    if subscriber.paused == paused:
        return False
    subscriber.paused = paused
    subscriber.save(update_fields=["paused", "updated_at"])
    log_event(subscriber, ConsentEvent.Kind.PAUSE if paused else ConsentEvent.Kind.RESUME, origin)
    return True


PREFERENCE_FIELDS = ("frequency", "weekday", "send_hour", "timezone", "papers_per_email")


def preferences_snapshot(subscriber: Subscriber) -> dict:
    snapshot = {name: getattr(subscriber, name) for name in PREFERENCE_FIELDS}
    snapshot["topics"] = sorted(subscriber.topics.values_list("slug", flat=True))
    return snapshot


@transaction.atomic
def update_preferences(subscriber: Subscriber, values: dict, topics, origin: Origin) -> dict:
    """Apply the preference form; log only what actually changed. Returns the changes."""
    subscriber = Subscriber.objects.select_for_update().get(pk=subscriber.pk)
    before = preferences_snapshot(subscriber)
    for name in PREFERENCE_FIELDS:
        setattr(subscriber, name, values[name])
    subscriber.full_clean(exclude=["email"])
    subscriber.save()
    subscriber.topics.set(topics)
    after = preferences_snapshot(subscriber)
    changes = {k: {"from": before[k], "to": after[k]} for k in after if before[k] != after[k]}
    if changes:
        log_event(subscriber, ConsentEvent.Kind.PREFERENCES, origin, changes=changes)
    return changes


@transaction.atomic
def go_weekly(subscriber: Subscriber, origin: Origin, method: str) -> bool:
    """Daily becomes weekly (on the reader's weekday): the unsubscribe page's "weekly instead"."""
    subscriber = Subscriber.objects.select_for_update().get(pk=subscriber.pk)
    if subscriber.frequency == Subscriber.Frequency.WEEKLY:
        return False
    subscriber.frequency = Subscriber.Frequency.WEEKLY
    subscriber.save(update_fields=["frequency", "updated_at"])
    log_event(subscriber, ConsentEvent.Kind.PREFERENCES, origin,
              changes={"frequency": {"from": Subscriber.Frequency.DAILY, "to": Subscriber.Frequency.WEEKLY}}, method=method)
    return True


@transaction.atomic
def leave_topic(subscriber: Subscriber, topic: Topic, origin: Origin, method: str) -> bool:
    """Take one topic off the reader's list (the digest's "Not interested in <topic>")."""
    subscriber = Subscriber.objects.select_for_update().get(pk=subscriber.pk)
    if not subscriber.topics.filter(pk=topic.pk).exists():
        return False
    before = sorted(subscriber.topics.values_list("slug", flat=True))
    subscriber.topics.remove(topic)
    after = [slug for slug in before if slug != topic.slug]
    log_event(subscriber, ConsentEvent.Kind.PREFERENCES, origin, changes={"topics": {"from": before, "to": after}}, method=method)
    return True


@transaction.atomic
def suppress(subscriber: Subscriber, status: str, origin: Origin, **details) -> bool:
    """Stop all mail after a hard bounce, a complaint or a provider-side unsubscribe."""
    subscriber = Subscriber.objects.select_for_update().get(pk=subscriber.pk)
    if subscriber.status == status:
        return False
    kind = {
        Subscriber.Status.BOUNCED: ConsentEvent.Kind.BOUNCE,
        Subscriber.Status.COMPLAINED: ConsentEvent.Kind.COMPLAINT,
        Subscriber.Status.UNSUBSCRIBED: ConsentEvent.Kind.UNSUBSCRIBE,
    }[status]
    was = subscriber.status
    subscriber.status = status
    subscriber.unsubscribed_at = subscriber.unsubscribed_at or timezone.now()
    subscriber.save(update_fields=["status", "unsubscribed_at", "updated_at"])
    log_event(subscriber, kind, origin, previous_status=was, **details)
    return True
