"""Import and export of subscribers in the admin (subscriptions/importing.py and
exporting.py): an "Export selected subscribers to CSV" action on the list, and an "Import
CSV" page that shows a summary and every refused row with its reason."""

import io

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import path
from django.utils import timezone

from . import exporting
from .importing import InvalidFile, Mode, import_csv

SHOWN_REFUSALS = 500


class ImportForm(forms.Form):
    file = forms.FileField(label="CSV file", help_text="One row per address; an `email` column, and optionally topics (slugs), status and preferences, as the export writes them.")
    mode = forms.ChoiceField(choices=Mode.choices, initial=Mode.DOUBLE_OPT_IN, widget=forms.RadioSelect)
    consent_note = forms.CharField(
        required=False, max_length=500, widget=forms.Textarea(attrs={"rows": 3, "cols": 70}),
        help_text="Required for “confirmed elsewhere”: where and how these readers gave their consent. Kept in each one's consent log.",
    )

    def clean(self):
        cleaned = super().clean()
        note = " ".join(cleaned.get("consent_note", "").split())
        if cleaned.get("mode") == Mode.CONFIRMED_ELSEWHERE and len(note) < 10:
            self.add_error("consent_note", "Say where and how these readers gave their consent (10 characters or more).")
        return cleaned


class SubscriberImportExportMixin:
    change_list_template = "admin/subscriptions/subscriber/change_list.html"

    def get_urls(self):
        view = self.admin_site.admin_view(self.import_view)
        return [path("import/", view, name="subscriptions_subscriber_import"), *super().get_urls()]

    def import_view(self, request):
        if not (self.has_add_permission(request) and self.has_change_permission(request)):
            raise PermissionDenied
        form = ImportForm(request.POST or None, request.FILES or None)
        report = None
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            text = io.TextIOWrapper(upload.file, encoding="utf-8-sig", newline="")
            try:
                report = import_csv(text, form.cleaned_data["mode"], form.cleaned_data["consent_note"],
                                    source=upload.name, by=f"admin:{request.user}")
            except InvalidFile as exc:
                form.add_error("file", str(exc))
        context = {
            **self.admin_site.each_context(request),
            "title": "Import subscribers",
            "opts": self.model._meta,
            "form": form,
            "report": report,
            "refused": report.refused[:SHOWN_REFUSALS] if report else [],
        }
        return TemplateResponse(request, "admin/subscriptions/subscriber/import.html", context)

    @admin.action(description="Export selected subscribers to CSV", permissions=["view"])
    def export_csv(self, request, queryset):
        response = StreamingHttpResponse(exporting.csv_lines(queryset), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="subscribers-{timezone.now():%Y-%m-%d}.csv"'
        return response
