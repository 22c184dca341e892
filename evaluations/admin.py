"""Evaluation suites in the admin: cases (edited, with history) and runs (read-only)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.auth.models import User
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join
from simple_history.admin import SimpleHistoryAdmin

from core.admin import ReadOnlyAdmin
from evaluations import services as evaluations
from evaluations.models import EvaluationCase, EvaluationRun


class EvaluationCaseForm(forms.ModelForm):  # type: ignore[type-arg]
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}), help_text="Why this case is added or changed (kept in its history)."
    )

    class Meta:
        model = EvaluationCase
        fields = ["prompt", "name", "variables", "expectations", "active"]

    def clean_expectations(self) -> Any:
        expectations = self.cleaned_data["expectations"]
        if errors := evaluations.expectations_errors(expectations):
            raise forms.ValidationError(errors)
        return expectations


@admin.register(EvaluationCase)
class EvaluationCaseAdmin(SimpleHistoryAdmin):  # type: ignore[misc]
    form = EvaluationCaseForm
    list_display = ["name", "prompt", "active", "created_by", "created_at"]
    list_filter = ["active", "prompt"]
    search_fields = ["name", "prompt__slug"]
    list_select_related = ["prompt", "created_by"]

    def get_readonly_fields(self, request: HttpRequest, obj: EvaluationCase | None = None) -> list[str]:
        return ["prompt", "created_by"] if obj is not None else []

    def save_model(self, request: HttpRequest, obj: EvaluationCase, form: forms.ModelForm, change: bool) -> None:  # type: ignore[type-arg]
        user: User = request.user  # type: ignore[assignment]
        evaluations.evaluation_case_save(actor=user, case=obj, reason=form.cleaned_data["reason"])

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # a case is made inactive instead: past runs name it


@admin.register(EvaluationRun)
class EvaluationRunAdmin(ReadOnlyAdmin):
    """Evaluation runs and each case's result. Started from a version's page ("Run evaluation") or by
    the weekly production evaluation."""

    list_display = ["version", "status", "pass_rate_shown", "trigger", "requested_by", "created_at", "finished_at"]
    list_filter = ["status", "trigger", "version__prompt"]
    list_select_related = ["version__prompt", "requested_by"]
    date_hierarchy = "created_at"
    fields = readonly_fields = ("version", "content_hash", "status", "pass_rate_shown", "trigger", "requested_by",
                                "environment", "error", "created_at", "started_at", "finished_at",
                                "case_results")  # fmt: skip

    @admin.display(description="pass rate", ordering="pass_rate")
    def pass_rate_shown(self, obj: EvaluationRun) -> str:
        if obj.pass_rate is None:
            return "—"
        return f"{obj.pass_rate:.0%} ({obj.cases_passed} of {obj.cases_total})"

    @admin.display(description="results")
    def case_results(self, obj: EvaluationRun) -> str:
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td><pre>{}</pre></td></tr>",
            (
                (result["name"], "pass" if result["passed"] else "FAIL", "; ".join(result["failures"]),
                 result["output"])
                for result in obj.results
            ),
        )  # fmt: skip
        return format_html(
            '<table id="evaluation-results"><thead><tr><th>case</th><th>result</th><th>failures</th>'
            "<th>answer as sent (placeholders)</th></tr></thead><tbody>{}</tbody></table>",
            rows,
        )
