from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponseBase, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path

from audit.evidence import Period, evidence_chunks, evidence_types
from audit.models import AuditEvent
from core.admin import ReadOnlyAdmin


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    change_list_template = "admin/audit/auditevent/change_list.html"

    def get_urls(self) -> list[URLPattern]:
        return [
            path("evidence/", self.admin_site.admin_view(evidence_view), name="audit_evidence"),
            *super().get_urls(),
        ]

    list_display = ["sequence", "occurred_at", "actor_repr", "action", "object_type", "object_repr", "client_ip"]
    list_filter = ["action", "object_type"]
    search_fields = ["actor_repr", "object_repr", "object_id", "request_id"]
    date_hierarchy = "occurred_at"
    show_full_result_count = False
    list_select_related = ["actor"]
    readonly_fields = [
        "sequence",
        "occurred_at",
        "actor",
        "actor_repr",
        "action",
        "object_type",
        "object_id",
        "object_repr",
        "changes",
        "reason",
        "request_id",
        "client_ip",
        "previous_hash",
        "hash",
    ]


class EvidenceForm(forms.Form):
    type = forms.ChoiceField(choices=[])
    first_day = forms.DateField(label="From", widget=forms.DateInput(attrs={"type": "date"}))
    last_day = forms.DateField(label="To", widget=forms.DateInput(attrs={"type": "date"}), help_text="UTC, included.")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["type"].choices = [  # type: ignore[attr-defined]
            (name, kind.title) for name, kind in evidence_types().items()
        ]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("first_day") and data.get("last_day") and data["last_day"] < data["first_day"]:
            raise forms.ValidationError("The period ends before it starts.")
        return data


def evidence_view(request: HttpRequest) -> HttpResponseBase:
    """Pick a type and a period, download the signed package: streamed as it is built, so a large export
    neither waits for the whole file nor holds it in memory."""
    if not request.user.has_perm("audit.export_evidence"):
        raise PermissionDenied
    form = EvidenceForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        chunks = evidence_chunks(
            type_name=data["type"], period=Period(data["first_day"], data["last_day"]), actor=request.user
        )
        name = f"tollgate-{data['type']}-{data['first_day']}-{data['last_day']}.zip"
        response = StreamingHttpResponse(chunks, content_type="application/zip")
        response["Content-Disposition"] = f'attachment; filename="{name}"'  # letters, digits, -, _ and .
        response["Cache-Control"] = "no-store"
        return response
    context = {**admin.site.each_context(request), "title": "Evidence packages", "form": form,
               "types": evidence_types().values()}  # fmt: skip
    return TemplateResponse(request, "admin/audit/evidence.html", context)
