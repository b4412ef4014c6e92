"""Digests in the admin: deliveries (read-only: they are the sending record), each linked to
the digest it sent; a staff-only preview of any subscriber's next unsent digest, built exactly
as it would be sent but not sent; and "Send a test digest to this address" from that preview."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.decorators import method_decorator
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from newsletter.admin_site import ReadOnlyAdminMixin
from newsletter.digests.preview import next_digest, sent_digest_html
from newsletter.digests.trial import SUBJECT_PREFIX, send_test_digest
from newsletter.models import Delivery
from subscriptions.admin import SubscriberAdmin
from subscriptions.models import Subscriber


class TestDigestForm(forms.Form):
    to = forms.EmailField(label="Send a test digest to this address", max_length=254,
                          widget=forms.EmailInput(attrs={"size": 36, "placeholder": "you@example.org"}))


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    # Narrow enough for a 1280 px screen; the kind and the provider's message id are on the detail page.
    list_display = ["digest_date", "subscriber", "status", "attempts", "sent_at", "digest_link"]
    list_filter = ["status", "kind", "digest_date"]
    search_fields = ["subscriber__email", "provider_message_id"]
    list_select_related = ["subscriber"]
    date_hierarchy = "digest_date"
    show_full_result_count = False

    def get_readonly_fields(self, request, obj=None):
        return [*(f.name for f in self.model._meta.fields), "digest_link"]

    @admin.display(description="Digest")
    def digest_link(self, delivery):
        if not delivery.content_id:
            return "–"
        return format_html('<a href="{}">View digest</a>', reverse("admin:newsletter_delivery_digest", args=[delivery.pk]))

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("preview/<int:subscriber_id>/", view(self.preview_view), name="newsletter_delivery_preview"),
            path("preview/<int:subscriber_id>/send-test/", view(self.send_test_view), name="newsletter_delivery_send_test"),
            path("<int:delivery_id>/digest/", view(self.digest_view), name="newsletter_delivery_digest"),
            *super().get_urls(),
        ]

    def digest_view(self, request, delivery_id):
        """The digest a delivery sent, as its reader got it but without their personal links."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        delivery = get_object_or_404(Delivery.objects.select_related("subscriber", "content"), pk=delivery_id, content__isnull=False)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Digest of {delivery.digest_date} sent to {delivery.subscriber.email}",
            "delivery": delivery,
            "papers": delivery.content.ordered_papers(),
            "html": sent_digest_html(delivery),
            "opts": Delivery._meta,
        }
        return TemplateResponse(request, "newsletter/admin/delivery_digest.html", context)

    @staticmethod
    def may_send_tests(request) -> bool:
        # Sends mail: for staff who may change subscribers, not for view-only staff.
        return request.user.has_perm("subscriptions.change_subscriber")

    def preview_view(self, request, subscriber_id, form=None):
        if not request.user.has_perm("subscriptions.view_subscriber"):
            raise PermissionDenied
        subscriber = get_object_or_404(Subscriber, pk=subscriber_id)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Next digest of {subscriber.email}",
            "preview": next_digest(subscriber),
            "subscriber": subscriber,
            "opts": Subscriber._meta,
            "test_form": (form or TestDigestForm(initial={"to": request.user.email})) if self.may_send_tests(request) else None,
        }
        # The email is shown in a sandboxed srcdoc frame: escaped into the attribute, no scripts.
        return TemplateResponse(request, "newsletter/admin/digest_preview.html", context)

    @method_decorator(require_POST)
    def send_test_view(self, request, subscriber_id):
        """The preview page's form: nothing is recorded, the subject starts with [TEST]."""
        if not (self.may_send_tests(request) and request.user.has_perm("subscriptions.view_subscriber")):
            raise PermissionDenied
        subscriber = get_object_or_404(Subscriber, pk=subscriber_id)
        form = TestDigestForm(request.POST)
        if not form.is_valid():
            return self.preview_view(request, subscriber_id, form=form)
        address = form.cleaned_data["to"]
        preview = send_test_digest(subscriber, address, by=str(request.user))
        if preview.reason:
            self.message_user(request, f"Nothing sent. {preview.reason}", messages.WARNING)
        else:
            self.message_user(
                request, f"Test digest for {preview.digest_date} sent to {address}: “{SUBJECT_PREFIX}{preview.subject}”.", messages.SUCCESS
            )
        return redirect(reverse("admin:newsletter_delivery_preview", args=[subscriber.pk]))


@admin.action(description="Preview next digest (sends nothing)", permissions=["view"])
def preview_next_digest(modeladmin, request, queryset):
    """The subscriber list's action: the preview of the first selected subscriber. Registered
    from here, so the subscriptions app needs nothing of the digests."""
    subscriber = queryset.order_by("pk").first()
    return redirect(reverse("admin:newsletter_delivery_preview", args=[subscriber.pk]))


SubscriberAdmin.actions = [*SubscriberAdmin.actions, preview_next_digest]
