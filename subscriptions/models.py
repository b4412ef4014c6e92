import secrets
import zoneinfo

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models.functions import Lower
from django.utils.timezone import now


def new_link_secret() -> str:
    return secrets.token_urlsafe(24)


def normalize_email(email: str) -> str:
    """Strip blanks and lowercase the domain (RFC 5321: only the local part may be case-sensitive)."""
    email = (email or "").strip()
    local, sep, domain = email.rpartition("@")
    return f"{local}@{domain.lower()}" if sep else email


def validate_timezone(value: str) -> None:
    if value not in available_timezones():
        raise ValidationError(f"Unknown timezone {value!r}.")


_TIMEZONES: list[str] = []


def available_timezones() -> list[str]:
    if not _TIMEZONES:
        _TIMEZONES.extend(sorted(zoneinfo.available_timezones() - {"localtime", "Factory"}))
    return _TIMEZONES


class Topic(models.Model):
    slug = models.SlugField(unique=True)
    name = models.CharField(max_length=80)
    description = models.CharField(max_length=300, blank=True)
    # One keyword or phrase per line; used to sort papers into this topic.
    keywords = models.TextField(blank=True, help_text="One keyword or phrase per line.")
    active = models.BooleanField(default=True)
    display_order = models.PositiveSmallIntegerField(default=100)

    class Meta:
        ordering = ["display_order", "name"]

    def __str__(self):
        return self.name

    @property
    def keyword_list(self) -> list[str]:
        return [k.strip() for k in self.keywords.splitlines() if k.strip()]


class SubscriberQuerySet(models.QuerySet):
    def by_email(self, email: str):
        return self.filter(email__iexact=normalize_email(email))

    def receiving(self):
        """Subscribers who should get digests now."""
        return self.filter(status=Subscriber.Status.ACTIVE, paused=False)


class Subscriber(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending confirmation"
        ACTIVE = "active", "Active"
        UNSUBSCRIBED = "unsubscribed", "Unsubscribed"
        BOUNCED = "bounced", "Bounced"
        COMPLAINED = "complained", "Complained"

    class Frequency(models.TextChoices):
        DAILY = "daily", "Daily"
        WEEKLY = "weekly", "Weekly"

    class Weekday(models.IntegerChoices):
        MONDAY = 0, "Monday"
        TUESDAY = 1, "Tuesday"
        WEDNESDAY = 2, "Wednesday"
        THURSDAY = 3, "Thursday"
        FRIDAY = 4, "Friday"
        SATURDAY = 5, "Saturday"
        SUNDAY = 6, "Sunday"

    email = models.EmailField(max_length=254)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)
    topics = models.ManyToManyField(Topic, blank=True, related_name="subscribers")
    frequency = models.CharField(max_length=8, choices=Frequency.choices, default=Frequency.DAILY)
    weekday = models.PositiveSmallIntegerField(
        choices=Weekday.choices, default=Weekday.MONDAY, help_text="Day of weekly digests."
    )
    timezone = models.CharField(max_length=64, default="UTC", validators=[validate_timezone])
    send_hour = models.PositiveSmallIntegerField(
        default=7, validators=[MaxValueValidator(23)], help_text="Local hour (0-23) at which digests are sent."
    )
    papers_per_email = models.PositiveSmallIntegerField(
        default=10, validators=[MinValueValidator(1), MaxValueValidator(50)]
    )
    paused = models.BooleanField(default=False)
    # "What I want to read about": the reader's own words, counted by their ranking from day one.
    interests = models.TextField(blank=True, max_length=2000, default="", db_default="")
    # Opt-in: one clearly marked paper from outside the reader's topics that their model rates highly.
    outside_topics = models.BooleanField(default=False, db_default=False)
    # Soft bounces (mailbox full, deferred) in a row; reset by a delivered event. Three in a
    # row suppress the address like a hard bounce.
    soft_bounces = models.PositiveSmallIntegerField(default=0, editable=False)
    # Mixed into the signature of preference links: replacing it revokes every such link.
    secret = models.CharField(max_length=64, default=new_link_secret, editable=False)
    created_at = models.DateTimeField(default=now, editable=False)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    unsubscribed_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = SubscriberQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint(Lower("email"), name="subscriber_email_ci_unique")]
        indexes = [models.Index(fields=["status", "paused"])]

    def __str__(self):
        return self.email

    def save(self, *args, **kwargs):
        self.email = normalize_email(self.email)
        super().save(*args, **kwargs)

    def revoke_links(self):
        self.secret = new_link_secret()
        self.save(update_fields=["secret", "updated_at"])


class ConsentEvent(models.Model):
    """Append-only record of every change of a subscriber's consent or preferences (GDPR art. 7)."""

    class Kind(models.TextChoices):
        SIGNUP = "signup", "Sign-up requested"
        CONFIRM = "confirm", "Confirmed"
        PREFERENCES = "preferences", "Preferences changed"
        PAUSE = "pause", "Paused"
        RESUME = "resume", "Resumed"
        UNSUBSCRIBE = "unsubscribe", "Unsubscribed"
        RESUBSCRIBE = "resubscribe", "Resubscribed"
        BOUNCE = "bounce", "Bounced"
        COMPLAINT = "complaint", "Complained"
        ADMIN = "admin", "Changed by staff"
        EXPORT = "export", "Data downloaded"

    subscriber = models.ForeignKey(Subscriber, on_delete=models.PROTECT, related_name="consent_events")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    created_at = models.DateTimeField(default=now, editable=False, db_index=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=512, blank=True)
    # What changed: e.g. {"topics": [...], "frequency": "daily", "method": "one-click"}.
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.get_kind_display()} · {self.subscriber_id} · {self.created_at:%Y-%m-%d %H:%M}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise ValueError("Consent events are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("Consent events are append-only.")


class Erasure(models.Model):
    """The record that one person's data was erased ("Delete my data", or staff on their
    request): their subscriber row, consent log, deliveries and everything they told us are
    gone (subscriptions/data_rights.py). What stays holds no address and no IP: a keyed hash
    of the address (HMAC with SECRET_KEY, so no one without the key can test addresses
    against it), the time, who asked and how much was erased. It proves the erasure when the
    person asks again; a later sign-up with the address starts afresh. Append-only."""

    address_hash = models.CharField(max_length=64, db_index=True, editable=False)
    erased_at = models.DateTimeField(default=now, editable=False, db_index=True)
    # "preferences page" (the person), or "admin:<staff username>".
    origin = models.CharField(max_length=200, editable=False)
    # What was removed, as counts: {"consent_events": 4, "deliveries": 12, ...}.
    removed = models.JSONField(default=dict, blank=True, editable=False)

    class Meta:
        ordering = ["-erased_at", "-id"]

    def __str__(self):
        return f"Erasure · {self.erased_at:%Y-%m-%d %H:%M} · {self.origin}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise ValueError("Erasure records are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("Erasure records are append-only.")
