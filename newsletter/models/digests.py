"""Digests: what each subscriber was (or will be) sent on each of their local dates.

A `Delivery` is one subscriber's digest for one local date, with explicit states; the unique
constraint on (subscriber, digest_date) is what makes "never twice a day" hold whatever the
workers do. The papers of a digest live on a shared `DigestContent` (an ordered list of
papers, identified by a hash of that list): subscribers whose digests hold the same papers
point at the same row, so a run writes one row per distinct digest instead of one per
subscriber and paper.
"""

import hashlib

from django.db import models
from django.utils.timezone import now


class DigestContent(models.Model):
    """An ordered list of papers, shared by every delivery that carries exactly these papers."""

    key = models.CharField(max_length=64, unique=True, help_text="SHA-256 of the ordered paper ids.")
    papers = models.ManyToManyField("newsletter.Paper", through="DigestItem", related_name="digest_contents")
    created_at = models.DateTimeField(default=now, editable=False)

    class Meta:
        verbose_name = "digest content"

    def __str__(self):
        return f"digest content {self.key[:12]}"

    @staticmethod
    def key_for(paper_ids) -> str:
        return hashlib.sha256(",".join(str(pk) for pk in paper_ids).encode()).hexdigest()

    def ordered_papers(self):
        from .papers import Paper

        return Paper.objects.filter(digest_items__content=self).order_by("digest_items__position")


class DigestItem(models.Model):
    content = models.ForeignKey(DigestContent, on_delete=models.CASCADE, related_name="items")
    paper = models.ForeignKey("newsletter.Paper", on_delete=models.CASCADE, related_name="digest_items")
    position = models.PositiveSmallIntegerField()

    class Meta:
        ordering = ["content", "position"]
        constraints = [
            models.UniqueConstraint(fields=["content", "paper"], name="digest_item_paper_once"),
            models.UniqueConstraint(fields=["content", "position"], name="digest_item_position_once"),
        ]


class Delivery(models.Model):
    class Kind(models.TextChoices):
        DAILY = "daily", "Daily"
        WEEKLY = "weekly", "Weekly"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        SKIPPED = "skipped", "Skipped (nothing new)"
        FAILED = "failed", "Failed"

    subscriber = models.ForeignKey("subscriptions.Subscriber", on_delete=models.CASCADE, related_name="deliveries")
    digest_date = models.DateField(help_text="The subscriber's local date.")
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.DAILY)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    content = models.ForeignKey(
        DigestContent, null=True, blank=True, on_delete=models.PROTECT, related_name="deliveries"
    )
    created_at = models.DateTimeField(default=now, editable=False)
    # Set when a dispatcher put the row on the queue (or when a retry is due): the dispatcher
    # re-queues pending rows only after DIGEST_REQUEUE_AFTER, so it never races a retry.
    queued_at = models.DateTimeField(null=True, blank=True)
    # Who holds the row while it is `sending`; a claim older than DIGEST_CLAIM_TIMEOUT is
    # considered abandoned by a dead worker and may be taken over.
    claimed_at = models.DateTimeField(null=True, blank=True)
    claimed_by = models.CharField(max_length=200, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    sent_at = models.DateTimeField(null=True, blank=True)
    provider_message_id = models.CharField(max_length=255, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        verbose_name_plural = "deliveries"
        ordering = ["-digest_date", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["subscriber", "digest_date"], name="delivery_once_per_local_date"),
        ]
        indexes = [
            models.Index(fields=["status", "digest_date"], name="delivery_status_date"),
            # The dashboard's count of recent days by status reads only this index.
            models.Index(fields=["digest_date", "status"], name="delivery_date_status"),
        ]

    def __str__(self):
        return f"{self.get_kind_display()} digest {self.digest_date} for subscriber {self.subscriber_id} ({self.status})"
