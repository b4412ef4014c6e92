from django.contrib import admin, messages

from newsletter.admin_site import ReadOnlyAdminMixin
from newsletter.topic_admin import TopicModelAdminMixin

from . import actions
from .admin_data_rights import DataRightsAdminMixin, ErasureAdmin
from .admin_io import SubscriberImportExportMixin
from .models import ConsentEvent, Erasure, Subscriber, Topic

STAFF = actions.Origin(user_agent="admin")


@admin.register(Topic)
class TopicAdmin(TopicModelAdminMixin, admin.ModelAdmin):
    list_display = ["name", "slug", "active", "display_order", "subscriber_count"]
    list_editable = ["active", "display_order"]
    search_fields = ["name", "slug", "keywords"]
    prepopulated_fields = {"slug": ["name"]}

    @admin.display(description="Subscribers")
    def subscriber_count(self, topic):
        return topic.subscribers.count()


class ConsentEventInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = ConsentEvent
    fields = ["created_at", "kind", "ip_address", "user_agent", "details"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ["-created_at"]


def _admin_snapshot(subscriber: Subscriber) -> dict:
    return {**actions.preferences_snapshot(subscriber), "status": subscriber.status, "paused": subscriber.paused}


@admin.register(Subscriber)
class SubscriberAdmin(DataRightsAdminMixin, SubscriberImportExportMixin, admin.ModelAdmin):
    # Narrow enough for a 1280 px screen: frequency, hour, timezone and pause in one column.
    list_display = ["email", "status", "schedule", "created_at"]
    list_filter = ["status", "paused", "frequency", "topics"]
    search_fields = ["email"]
    readonly_fields = ["created_at", "confirmed_at", "unsubscribed_at", "updated_at"]
    filter_horizontal = ["topics"]
    date_hierarchy = "created_at"
    inlines = [ConsentEventInline]
    # newsletter/admin/digests.py adds "Preview next digest" (the digest side owns it).
    actions = ["unsubscribe_selected", "pause_selected", "resume_selected", "revoke_links", "export_csv",
               "download_data", "erase_selected"]

    @admin.display(description="Schedule", ordering="frequency")
    def schedule(self, subscriber):
        day = f" on {subscriber.get_weekday_display()}s" if subscriber.frequency == Subscriber.Frequency.WEEKLY else ""
        paused = ", paused" if subscriber.paused else ""
        return f"{subscriber.get_frequency_display()}{day} at {subscriber.send_hour}:00 {subscriber.timezone}{paused}"

    # Staff edits change consent or preferences too: log what changed, like the public pages do.
    def save_model(self, request, obj, form, change):
        obj._snapshot_before = _admin_snapshot(Subscriber.objects.get(pk=obj.pk)) if change else {}
        super().save_model(request, obj, form, change)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        before, after = form.instance._snapshot_before, _admin_snapshot(form.instance)
        changes = {k: {"from": before.get(k), "to": v} for k, v in after.items() if before.get(k) != v}
        if changes:
            actions.log_event(form.instance, ConsentEvent.Kind.ADMIN, STAFF, changes=changes, by=str(request.user))

    # Actions that change a subscriber need the change permission (Django offers an action to
    # anyone who may view the list otherwise); the digest preview is for view-only staff too.
    @admin.action(description="Unsubscribe selected subscribers", permissions=["change"])
    def unsubscribe_selected(self, request, queryset):
        done = sum(actions.unsubscribe(s, STAFF, method=f"admin:{request.user}") for s in queryset)
        self.message_user(request, f"Unsubscribed {done} subscriber(s).", messages.SUCCESS)

    @admin.action(description="Pause selected subscribers", permissions=["change"])
    def pause_selected(self, request, queryset):
        done = sum(actions.set_paused(s, True, STAFF) for s in queryset)
        self.message_user(request, f"Paused {done} subscriber(s).", messages.SUCCESS)

    @admin.action(description="Resume selected subscribers", permissions=["change"])
    def resume_selected(self, request, queryset):
        done = sum(actions.set_paused(s, False, STAFF) for s in queryset)
        self.message_user(request, f"Resumed {done} subscriber(s).", messages.SUCCESS)

    @admin.action(description="Revoke preference links (sends no email)", permissions=["change"])
    def revoke_links(self, request, queryset):
        for subscriber in queryset:
            subscriber.revoke_links()
            actions.log_event(subscriber, ConsentEvent.Kind.ADMIN, STAFF, action="revoke_links", by=str(request.user))
        self.message_user(request, f"Revoked the preference links of {queryset.count()} subscriber(s).")


@admin.register(ConsentEvent)
class ConsentEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Read-only: the log is proof of consent and must not be edited."""

    list_display = ["created_at", "subscriber", "kind", "ip_address", "short_user_agent"]
    list_filter = ["kind"]
    search_fields = ["subscriber__email", "ip_address"]
    date_hierarchy = "created_at"
    list_select_related = ["subscriber"]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="User agent")
    def short_user_agent(self, event):
        return event.user_agent[:60]


admin.site.register(Erasure, ErasureAdmin)
