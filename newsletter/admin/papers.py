"""The paper store in the admin: papers with their topic scores and rank history, scrape runs
(read-only; failed ones in red, with their error) and ranks. Scraped data is shown, never
edited: it is rewritten by the next scrape anyway. Everything scraped goes through Django's
autoescaping (format_html for the little markup added here)."""

from django.contrib import admin
from django.utils.html import format_html

from newsletter.models import Paper, PaperRank, PaperTopicScore, ScrapeRun
from newsletter.admin_site import ReadOnlyAdminMixin


class PaperTopicScoreInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = PaperTopicScore
    fields = ["topic", "score", "primary", "matched", "evidence"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ["-score"]


class PaperRankInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = PaperRank
    fields = ["run", "rank", "upvotes"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ["-run__started_at"]
    max_num = 0
    verbose_name_plural = "Trending history"


@admin.register(Paper)
class PaperAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["arxiv_id", "title", "upvotes", "num_comments", "topic_names", "first_seen_at", "last_seen_at"]
    list_filter = ["topics", "first_seen_at"]
    search_fields = ["arxiv_id", "title", "organization"]
    date_hierarchy = "first_seen_at"
    readonly_fields = ["links"]
    fieldsets = [
        (None, {"fields": ["arxiv_id", "title", "links", "authors", "organization", "upvotes", "num_comments"]}),
        ("Text", {"fields": ["abstract", "ai_summary", "ai_keywords"]}),
        ("Links", {"fields": ["github_repo", "github_stars", "project_page", "thumbnail"]}),
        ("Dates", {"fields": ["published_at", "featured_at", "first_seen_at", "last_seen_at"]}),
    ]
    inlines = [PaperTopicScoreInline, PaperRankInline]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("topics")

    @admin.display(description="Topics")
    def topic_names(self, paper):
        return ", ".join(topic.name for topic in paper.topics.all())

    @admin.display(description="Read it")
    def links(self, paper):
        source = paper.source
        return format_html('<a href="{}" rel="noopener">{}</a> · <a href="{}" rel="noopener">arXiv</a>',
                           source.paper_url(paper.arxiv_id), source.label, paper.arxiv_url)


@admin.register(ScrapeRun)
class ScrapeRunAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    # Narrow enough for a 1280 px screen: the source, HTTP status and other counts are on the detail page.
    list_display = ["started_at", "status_badge", "kind_label", "papers_found", "papers_new", "short_error", "alerted_at"]
    list_filter = ["status", "kind", "parser"]
    search_fields = ["source", "error"]
    date_hierarchy = "started_at"
    readonly_fields = ["status_badge", "kind_label"]

    def get_fields(self, request, obj=None):
        names = [f.name for f in ScrapeRun._meta.fields if f.name not in ("id", "status")]
        return ["status_badge", *["kind_label" if name == "kind" else name for name in names]]

    @admin.display(description="Status", ordering="status")
    def status_badge(self, run):
        if run.status == ScrapeRun.Status.FAILED:
            return format_html(
                '<strong class="scrape-failed" style="color:#fff;background:#ba2121;padding:1px 6px;border-radius:3px">{}</strong>',
                run.get_status_display().upper(),
            )
        if run.status == ScrapeRun.Status.RUNNING:
            return format_html('<span style="color:#a36d00">{}</span>', run.get_status_display())
        return format_html('<span style="color:#2f7d32">{}</span>', run.get_status_display())

    @admin.display(description="Kind", ordering="kind")
    def kind_label(self, run):
        return run.kind_label

    @admin.display(description="Error")
    def short_error(self, run):
        if run.status != ScrapeRun.Status.FAILED:
            return ""
        return run.error[:160]


@admin.register(PaperRank)
class PaperRankAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["run", "rank", "paper", "upvotes"]
    list_filter = ["run__kind", "run__status"]
    search_fields = ["paper__arxiv_id", "paper__title"]
    list_select_related = ["run", "paper"]
    raw_id_fields = ["run", "paper"]
