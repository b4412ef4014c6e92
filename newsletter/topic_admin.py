"""The topic model in the admin (mostly mixed into subscriptions.admin.TopicAdmin):
- "teach this topic": papers marked in or out of a topic (TopicExample, linked from the topic's
  page); saving one retrains the model through newsletter.signals;
- when and on what the model in use was trained;
- topic health: papers per topic per day, papers with no topic, the trained versions and the
  latest bench/relevance.py figures (var/topic_bench.json, written by its --record)."""

import json
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.contrib import admin, messages
from django.db.models import Count
from django.db.models.functions import TruncDate
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from newsletter.models import Paper, PaperTopicScore, TopicClassifier, TopicExample

HEALTH_DAYS = 14


@admin.register(TopicExample)
class TopicExampleAdmin(admin.ModelAdmin):
    """Teach this topic: a paper marked in (ticked) or out (unticked) of a topic."""

    list_display = ["topic", "paper", "belongs", "added_by", "added_at"]
    list_filter = ["topic", "belongs"]
    search_fields = ["paper__arxiv_id", "paper__title"]
    list_select_related = ["topic", "paper"]
    raw_id_fields = ["paper"]
    fields = ["topic", "paper", "belongs", "added_by", "added_at"]
    readonly_fields = ["added_by", "added_at"]

    def save_model(self, request, obj, form, change):
        obj.added_by = obj.added_by or str(request.user)[:150]
        super().save_model(request, obj, form, change)


def trained_summary(classifier: TopicClassifier | None, topic=None) -> str:
    if classifier is None:
        return "Not trained yet: the first scoring trains it from the shipped seed papers."
    on = classifier.trained_on or {}
    text = (
        f"Version {classifier.version}, trained {classifier.trained_at:%Y-%m-%d %H:%M} on "
        f"{on.get('seed_papers', 0)} seed papers and {on.get('operator_examples', 0)} operator examples"
    )
    if topic is not None:
        counts = (on.get("topics") or {}).get(topic.slug, {})
        has_classifier = topic.slug in (on.get("classifiers") or [])
        text += (
            f"; for this topic {counts.get('in', 0)} marked in, {counts.get('out', 0)} marked out, "
            f"{'with' if has_classifier else 'no'} classifier of its own"
            f"{'' if has_classifier else ' (its keywords and description decide until it has examples)'}"
        )
    if on.get("reason"):
        text += f". Reason: {on['reason']}"
    return text + "."


def bench_figures() -> dict | None:
    path = Path(settings.VAR_DIR) / "topic_bench.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


class TopicModelAdminMixin:
    """For the Topic admin: its taught examples, training facts, a health page and a retrain action."""

    change_list_template = "admin/subscriptions/topic/change_list.html"
    actions = ["retrain_topic_model"]

    def get_readonly_fields(self, request, obj=None):
        return [*super().get_readonly_fields(request, obj), "teach", "topic_model", "recent_papers"]

    @admin.display(description="Teach this topic")
    def teach(self, topic):
        if topic.pk is None:
            return "Save the topic first; then mark papers in or out of it."
        marks = TopicExample.objects.filter(topic=topic)
        add = reverse("admin:newsletter_topicexample_add") + f"?topic={topic.pk}"
        listing = reverse("admin:newsletter_topicexample_changelist") + f"?topic__id__exact={topic.pk}"
        return format_html(
            '{} paper(s) marked in, {} marked out · <a href="{}">Mark a paper in or out of this topic</a> · <a href="{}">its examples</a>',
            marks.filter(belongs=True).count(), marks.filter(belongs=False).count(), add, listing,
        )

    @admin.display(description="Topic model")
    def topic_model(self, topic):
        return trained_summary(TopicClassifier.objects.order_by("-version").defer("state").first(), topic)

    @admin.display(description="Papers, last 7 days")
    def recent_papers(self, topic):
        if topic.pk is None:
            return "-"
        since = timezone.now() - timedelta(days=7)
        rows = PaperTopicScore.objects.filter(topic=topic, paper__first_seen_at__gte=since)
        url = reverse("admin:newsletter_paper_changelist") + f"?topics__id__exact={topic.pk}"
        return format_html('{} ({} as primary topic) · <a href="{}">papers of this topic</a>', rows.count(), rows.filter(primary=True).count(), url)

    @admin.action(description="Retrain the topic model now and assign all papers again", permissions=["change"])
    def retrain_topic_model(self, request, queryset):
        from newsletter.signals import queue_retraining

        queue_retraining(f"asked by {request.user} in the admin")
        self.message_user(request, "Retraining queued; papers are assigned again when it is done.", messages.SUCCESS)

    def get_urls(self):
        return [path("health/", self.admin_site.admin_view(self.health_view), name="subscriptions_topic_health"), *super().get_urls()]

    def health_view(self, request):
        if not self.has_view_permission(request):
            return redirect("admin:index")
        today = timezone.localdate()
        days = [today - timedelta(days=n) for n in range(HEALTH_DAYS - 1, -1, -1)]
        since = timezone.now() - timedelta(days=HEALTH_DAYS)
        counts = (
            PaperTopicScore.objects.filter(paper__first_seen_at__gte=since)
            .annotate(day=TruncDate("paper__first_seen_at"))
            .values_list("topic_id", "day")
            .annotate(n=Count("id"))
        )
        per_topic: dict[int, dict] = {}
        for topic_id, day, n in counts:
            per_topic.setdefault(topic_id, {})[day] = n
        recent = Paper.objects.filter(first_seen_at__gte=since)
        no_topic_per_day = dict(
            recent.filter(topic_scores__isnull=True).annotate(day=TruncDate("first_seen_at")).values_list("day").annotate(n=Count("id"))
        )
        papers_per_day = dict(recent.annotate(day=TruncDate("first_seen_at")).values_list("day").annotate(n=Count("id")))
        rows = [
            {"topic": topic, "counts": [per_topic.get(topic.pk, {}).get(day, 0) for day in days],
             "total": sum(per_topic.get(topic.pk, {}).values())}
            for topic in self.model.objects.all()
        ]
        context = {
            **self.admin_site.each_context(request),
            "title": "Topic health",
            "opts": self.model._meta,
            "days": days,
            "rows": rows,
            "papers_per_day": [papers_per_day.get(day, 0) for day in days],
            "no_topic_per_day": [no_topic_per_day.get(day, 0) for day in days],
            "no_topic": Paper.objects.filter(topic_scores__isnull=True).order_by("-first_seen_at")[:20],
            "no_topic_count": Paper.objects.filter(topic_scores__isnull=True).count(),
            "classifiers": [(c, trained_summary(c)) for c in TopicClassifier.objects.order_by("-version").defer("state")[:5]],
            "bench": bench_figures(),
        }
        return TemplateResponse(request, "admin/subscriptions/topic/health.html", context)
