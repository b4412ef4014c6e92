"""Digests in the admin: deliveries (read-only: they are the sending record) and a staff-only
preview of any subscriber's next digest, built exactly as it would be sent but not sent."""

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from newsletter.digests.preview import next_digest
from newsletter.models import Delivery
from subscriptions.admin import ReadOnlyAdminMixin
from subscriptions.models import Subscriber


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["digest_date", "subscriber", "kind", "status", "attempts", "sent_at", "provider_message_id"]
    list_filter = ["status", "kind", "digest_date"]
    search_fields = ["subscriber__email", "provider_message_id"]
    list_select_related = ["subscriber"]
    date_hierarchy = "digest_date"
    show_full_result_count = False

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def get_urls(self):
        preview = self.admin_site.admin_view(self.preview_view)
        return [path("preview/<int:subscriber_id>/", preview, name="newsletter_delivery_preview"), *super().get_urls()]

    def preview_view(self, request, subscriber_id):
        if not request.user.has_perm("subscriptions.view_subscriber"):
            raise PermissionDenied
        subscriber = get_object_or_404(Subscriber, pk=subscriber_id)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Next digest of {subscriber.email}",
            "preview": next_digest(subscriber),
            "subscriber": subscriber,
            "opts": Subscriber._meta,
        }
        # The email is shown in a sandboxed srcdoc frame: escaped into the attribute, no scripts.
        return TemplateResponse(request, "newsletter/admin/digest_preview.html", context)


def preview_response(request, queryset):
    """For the "Preview next digest" action on subscribers: the first selected one."""
    subscriber = queryset.order_by("pk").first()
    return redirect(reverse("admin:newsletter_delivery_preview", args=[subscriber.pk]))
