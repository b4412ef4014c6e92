"""Every change of a subscriber's state goes through here, so each one is written to the
consent log in the same transaction and the follow-up emails are queued after commit."""

from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from .models import ConsentEvent, Subscriber, Topic, normalize_email


@dataclass(frozen=True)
class Origin:
    """Who asked for a change: kept in the consent log as proof."""

    ip_address: str | None = None
    user_agent: str = ""

    @classmethod
    def from_request(cls, request) -> "Origin":
        return cls(
            ip_address=request.META.get("REMOTE_ADDR") or None,
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


def signup_choices(topics, frequency: str) -> dict:
    """The choices made on the sign-up form; they travel inside the signed confirmation link."""
    return {"topics": sorted(t.slug for t in topics), "frequency": frequency}


@transaction.atomic
def request_signup(email: str, topics, frequency: str, origin: Origin) -> Subscriber:
    """Record a sign-up and queue the right email. The caller shows the same page whatever
    happened here, so the response never tells whether the address was known."""
    from . import tasks

    email = normalize_email(email)
    choices = signup_choices(topics, frequency)
    subscriber, created = Subscriber.objects.select_for_update().get_or_create(
        email__iexact=email, defaults={"email": email, "frequency": frequency}
    )
    if created:
        subscriber.topics.set(topics)
    if subscriber.status == Subscriber.Status.ACTIVE:
        transaction.on_commit(lambda: tasks.send_already_subscribed_email.delay(subscriber.pk))
    else:
        # Pending, unsubscribed, bounced or complained: nothing changes until the owner of
        # the mailbox confirms; the choices are applied from the confirmation link.
        log_event(subscriber, ConsentEvent.Kind.SIGNUP, origin, **choices)
        transaction.on_commit(lambda: tasks.send_confirmation_email.delay(subscriber.pk, choices))
    return subscriber


@transaction.atomic
def confirm(subscriber: Subscriber, choices: dict, origin: Origin) -> bool:
    """Activate after double opt-in. Returns False if it was already active (nothing changes)."""
    subscriber = Subscriber.objects.select_for_update().get(pk=subscriber.pk)
    if subscriber.status == Subscriber.Status.ACTIVE:
        return False
    was = subscriber.status
    subscriber.status = Subscriber.Status.ACTIVE
    subscriber.paused = False
    subscriber.confirmed_at = timezone.now()
    subscriber.unsubscribed_at = None
    if choices.get("frequency") in Subscriber.Frequency.values:
        subscriber.frequency = choices["frequency"]
    subscriber.save()
    topics = Topic.objects.filter(slug__in=choices.get("topics", []), active=True)
    if topics:
        subscriber.topics.set(topics)
    kind = ConsentEvent.Kind.CONFIRM if was == Subscriber.Status.PENDING else ConsentEvent.Kind.RESUBSCRIBE
    log_event(subscriber, kind, origin, previous_status=was, **signup_choices(subscriber.topics.all(), subscriber.frequency))
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
