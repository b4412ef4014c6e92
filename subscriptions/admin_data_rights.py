"""Data rights in the admin, for staff answering a person's request by email or letter
(subscriptions/data_rights.py does the work; the person can do both from their preferences
page): "Download data (JSON)" for one selected subscriber, and "Erase selected subscribers"
after a confirmation page. Both are written to the consent log (the erasure as an Erasure
record, listed read-only under *Erasures*, searchable by address)."""

import json

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.http import HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from . import data_rights
from .actions import Origin

STAFF = Origin(user_agent="admin")


class DataRightsAdminMixin:
    @admin.action(description="Download data of the selected subscriber (JSON)", permissions=["change"])
    def download_data(self, request, queryset):
        # One person per file: the file is what staff send to that person.
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one subscriber: a data download holds one person's data.", messages.ERROR)
            return None
        data = data_rights.export(queryset.get(), STAFF, by=f"admin:{request.user}")
        response = HttpResponse(json.dumps(data, indent=2, ensure_ascii=False), content_type="application/json; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="subscriber-data-{timezone.now():%Y-%m-%d}.json"'
        return response

    @admin.action(description="Erase selected subscribers (delete all their data)", permissions=["delete"])
    def erase_selected(self, request, queryset):
        if request.POST.get("confirm_erase") == "yes":
            erased = [data_rights.erase(subscriber, origin=f"admin:{request.user}") for subscriber in queryset]
            self.message_user(request, f"Erased {len(erased)} subscriber(s). Only an erasure record without the address remains.", messages.SUCCESS)
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": "Erase subscribers",
            "opts": self.model._meta,
            "queryset": queryset,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/subscriptions/subscriber/erase_confirmation.html", context)


class ErasureAdmin(admin.ModelAdmin):
    """Read-only proof of erasures. Search by address: it is hashed as erasures store it."""

    list_display = ["erased_at", "origin", "short_hash", "removed"]
    search_fields = ["address_hash"]  # replaced by get_search_results; makes the box appear
    date_hierarchy = "erased_at"
    search_help_text = "Type a whole address to see whether, and when, it was erased."

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        hashes = data_rights.erasures_of(term).values("address_hash")
        return queryset.filter(address_hash__in=hashes), False

    @admin.display(description="Keyed hash of the address")
    def short_hash(self, erasure):
        return f"{erasure.address_hash[:16]}…"
