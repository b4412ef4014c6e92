"""What each reader tells the service beyond their topics: votes from the digest ("More like
this" / "Less like this"), authors they follow, seed papers, and the per-reader model learned
from all of it (newsletter/personal/). Their free-text "what I want to read about" and the
opt-in "outside your topics" slot live on the Subscriber (subscriptions/models.py).

All of it is personal data: exported and erased with the subscriber (CASCADE).
"""

from django.db import models
from django.db.models import F, Q
from django.utils.timezone import now


class Vote(models.Model):
    """One reader's vote on one paper; a later vote replaces it, undo deletes it."""

    MORE = 1
    LESS = -1
    VALUES = ((MORE, "More like this"), (LESS, "Less like this"))

    subscriber = models.ForeignKey("subscriptions.Subscriber", on_delete=models.CASCADE, related_name="votes")
    paper = models.ForeignKey("newsletter.Paper", on_delete=models.CASCADE, related_name="votes")
    value = models.SmallIntegerField(choices=VALUES)
    # The digest the vote was cast from (its "rate this digest" page), when there was one.
    delivery = models.ForeignKey("newsletter.Delivery", null=True, blank=True, on_delete=models.SET_NULL, related_name="votes")
    created_at = models.DateTimeField(default=now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["subscriber", "paper"], name="vote_once_per_paper")]
        indexes = [models.Index(fields=["updated_at"], name="vote_updated")]

    def __str__(self):
        return f"{self.get_value_display()} · subscriber {self.subscriber_id} · paper {self.paper_id}"


class FollowedAuthor(models.Model):
    """An author a reader follows, by name; matched against scraped author lists by `key`
    (newsletter.personal.authors.author_key: case, accents and spacing folded)."""

    subscriber = models.ForeignKey("subscriptions.Subscriber", on_delete=models.CASCADE, related_name="followed_authors")
    name = models.CharField(max_length=200)
    key = models.CharField(max_length=200, editable=False)
    created_at = models.DateTimeField(default=now, editable=False)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["subscriber", "key"], name="follow_author_once")]

    def __str__(self):
        return self.name

    def save(self, *args, **kwargs):
        from newsletter.personal.authors import author_key

        self.key = author_key(self.name)
        super().save(*args, **kwargs)


class SeedPaper(models.Model):
    """A paper the reader named as "like this" (arXiv id or Hugging Face URL). `paper` is set
    once the paper is stored (it may be named before any scrape saw it)."""

    subscriber = models.ForeignKey("subscriptions.Subscriber", on_delete=models.CASCADE, related_name="seed_papers")
    arxiv_id = models.CharField(max_length=32)
    paper = models.ForeignKey("newsletter.Paper", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=now, editable=False)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [models.UniqueConstraint(fields=["subscriber", "arxiv_id"], name="seed_paper_once")]
        # Every scrape links the stored papers readers named before (seed_papers.link_stored):
        # a look-up by arXiv id among the unlinked ones, not a scan of everyone's seeds.
        indexes = [models.Index(fields=["arxiv_id"], condition=models.Q(paper__isnull=True), name="seed_paper_unlinked")]

    def __str__(self):
        return self.arxiv_id


# A profile waits for retraining (is stale) while the reader told us something after it was
# last trained, or it never was (the retrain task and the dashboard both read this).
STALE = Q(trained_at__isnull=True) | Q(signal_at__gt=F("trained_at"))


class ReaderProfile(models.Model):
    """A reader's trained model (newsletter/personal/profiles.py): sparse weights over the
    hashed paper features, and the exemplars that explain it ("because you liked X").
    `signal_at` is when the reader last told us something; the profile is stale while
    `trained_at` is older."""

    subscriber = models.OneToOneField("subscriptions.Subscriber", on_delete=models.CASCADE, related_name="reader_profile")
    version = models.PositiveIntegerField(default=0)
    signal_at = models.DateTimeField(default=now, db_index=True)
    trained_at = models.DateTimeField(null=True, blank=True, db_index=True)
    # {"format": 2, "w": (feature column, weight) pairs, "bias": float, "liked": n, "disliked": n,
    #  "likes": {"papers", "titles", "sizes", "w"}}, the pairs packed (personal/profiles.py StoredModel)
    model = models.JSONField(default=dict, blank=True)

    class Meta:
        indexes = [models.Index(fields=["trained_at", "signal_at"], name="profile_staleness")]

    def __str__(self):
        return f"profile of subscriber {self.subscriber_id} v{self.version}"
