"""Readers' votes in the admin, read-only: the list behind the dashboard's feedback figures.
A vote is cast, changed or undone by its reader only (newsletter/feedback/), which also marks
their model for retraining; an edit here would skip that. Paper titles are scraped text:
shown through Django's autoescaping."""

from django.contrib import admin

from newsletter.admin_site import ReadOnlyAdminMixin
from newsletter.models import Vote


@admin.register(Vote)
class VoteAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["updated_at", "value", "paper", "subscriber"]
    list_filter = ["value"]
    search_fields = ["subscriber__email", "paper__arxiv_id"]
    # The dashboard counts a vote on the day it was last set.
    date_hierarchy = "updated_at"
    list_select_related = ["paper", "subscriber"]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]
