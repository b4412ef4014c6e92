"""The admin site, branded with SITE_NAME, whose first page is the operator's dashboard
(newsletter/dashboard/). Installed in place of django.contrib.admin through its AppConfig, so
every `admin.site.register` and `@admin.register` lands here.

This module is imported while the app registry loads: it must not import models."""

from django.conf import settings
from django.contrib.admin import AdminSite
from django.contrib.admin.apps import AdminConfig


class OperatorAdminSite(AdminSite):
    index_template = "admin/dashboard.html"
    index_title = "Dashboard"

    @property
    def site_header(self):
        return settings.SITE_NAME

    @property
    def site_title(self):
        return f"{settings.SITE_NAME} admin"

    def index(self, request, extra_context=None):
        from newsletter.dashboard.page import dashboard_context

        return super().index(request, {**dashboard_context(request), **(extra_context or {})})


class ReadOnlyAdminMixin:
    """For records that are written by the system only (consent log, scrape runs, deliveries).
    Here, beside the site, so that both apps' admins use it without importing each other."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class OperatorAdminConfig(AdminConfig):
    default_site = "newsletter.admin_site.OperatorAdminSite"
