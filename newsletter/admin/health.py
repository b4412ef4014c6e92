"""Deliverability alerts in the admin: what the admins were mailed about, and when
(written by newsletter/health.py, read-only here)."""

from django.contrib import admin

from newsletter.models import HealthAlert
from newsletter.admin_site import ReadOnlyAdminMixin


@admin.register(HealthAlert)
class HealthAlertAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["day", "condition", "subject", "sent_at"]
    list_filter = ["condition"]
    date_hierarchy = "day"

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]
