"""Deliverability alerts sent to the admins: one row per condition and day, so a condition
that lasts is mailed once a day however often the beat checks it (newsletter/health.py)."""

from django.db import models
from django.utils.timezone import now


class HealthAlert(models.Model):
    class Condition(models.TextChoices):
        COMPLAINT_RATE = "complaint_rate", "Complaint rate too high"
        BOUNCE_RATE = "bounce_rate", "Bounce rate too high"
        STALE_SCRAPE = "stale_scrape", "No good scrape lately"

    condition = models.CharField(max_length=32, choices=Condition.choices)
    day = models.DateField(help_text="The (UTC) day the admins were mailed about it.")
    sent_at = models.DateTimeField(default=now, editable=False)
    subject = models.CharField(max_length=200)
    message = models.TextField(blank=True)

    class Meta:
        ordering = ["-sent_at"]
        constraints = [models.UniqueConstraint(fields=["condition", "day"], name="health_alert_once_a_day")]

    def __str__(self):
        return f"{self.get_condition_display()} · {self.day}"
