"""The price book, the cost calculator, the ledger and budget alerts in the admin."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path
from django.utils.functional import cached_property
from simple_history.admin import SimpleHistoryAdmin

from core.admin import ReadOnlyAdmin
from core.environments import Environment
from core.errors import ModelNotPriced
from usage import services
from usage.dashboard import MAX_DAYS, STACKS, Filters, dashboard
from usage.models import BudgetAlert, MonitorAlert, Price, UsageRecord
from usage.monitoring import monitor_alert_acknowledge
from usage.pricing import TokenUsage, cost
from usage.selectors import price_for, priced_models


def _user(request: HttpRequest) -> User:
    user: User = request.user  # type: ignore[assignment]
    return user


# --- price book -------------------------------------------------------------------------------------------


class PriceForm(forms.ModelForm):  # type: ignore[type-arg]
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), help_text="Why (goes into the history).")

    class Meta:
        model = Price
        fields = [
            "model",
            "effective_from",
            "input",
            "cache_write_5m",
            "cache_write_1h",
            "cache_read",
            "output",
            "batch_multiplier",
            "long_context_threshold",
            "long_context_input_multiplier",
            "long_context_output_multiplier",
            "min_cache_tokens",
            "note",
        ]


class CalculatorForm(forms.Form):
    models = forms.MultipleChoiceField(
        choices=[], widget=forms.SelectMultiple(attrs={"size": 8}), help_text="Pick the models to compare."
    )
    input_tokens = forms.IntegerField(min_value=0, initial=2_000)
    cached_tokens = forms.IntegerField(
        min_value=0, initial=1_500, help_text="Of the input, the static prefix that prompt caching would read."
    )
    output_tokens = forms.IntegerField(min_value=0, initial=300)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["models"].choices = [(model, model) for model in priced_models()]  # type: ignore[attr-defined]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if (cleaned.get("cached_tokens") or 0) > (cleaned.get("input_tokens") or 0):
            self.add_error("cached_tokens", "The cached prefix is part of the input: it cannot be larger.")
        return cleaned


@dataclass(frozen=True)
class CalculatorRow:
    """One model in the cost calculator: USD per request, and per 1,000 requests in four variants."""

    model: str
    per_request: Decimal
    standard: Decimal
    cached: Decimal
    batch: Decimal
    cached_batch: Decimal
    times_cheapest: Decimal | None = None


def calculator_rows(
    models: list[str], *, input_tokens: int, cached_tokens: int, output_tokens: int
) -> list[CalculatorRow]:
    """Per model: plain, with the cached prefix read from the cache, batched, and both."""
    plain = TokenUsage(input_tokens=input_tokens, output_tokens=output_tokens)
    cached = TokenUsage(
        input_tokens=input_tokens - cached_tokens, cache_read_tokens=cached_tokens, output_tokens=output_tokens
    )
    rows = []
    for model in models:
        price = price_for(model)
        rows.append(
            CalculatorRow(
                model=model,
                per_request=cost(price, plain),
                standard=cost(price, plain) * 1000,
                cached=cost(price, cached) * 1000,
                batch=cost(price, plain, batch=True) * 1000,
                cached_batch=cost(price, cached, batch=True) * 1000,
            )
        )
    cheapest = min((row.standard for row in rows), default=Decimal(0))
    if not cheapest:
        return rows
    return [replace(row, times_cheapest=(row.standard / cheapest).quantize(Decimal("0.1"))) for row in rows]


@admin.register(Price)
class PriceAdmin(SimpleHistoryAdmin):  # type: ignore[misc]
    form = PriceForm
    list_display = ["model", "effective_from", "input", "cache_write_5m", "cache_write_1h", "cache_read", "output"]
    list_filter = ["model"]
    search_fields = ["model"]
    change_list_template = "admin/usage/price/change_list.html"

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # ledger rows point at the entry that priced them

    def save_model(self, request: HttpRequest, obj: Price, form: forms.ModelForm, change: bool) -> None:  # type: ignore[type-arg]
        services.price_save(actor=_user(request), price=obj, reason=form.cleaned_data["reason"])

    def get_urls(self) -> list[URLPattern]:
        return [
            path("calculator/", self.admin_site.admin_view(self.calculator_view), name="usage_price_calculator"),
            *super().get_urls(),
        ]

    def calculator_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        form = CalculatorForm(request.GET or None)
        rows: list[CalculatorRow] = []
        if form.is_bound and form.is_valid():
            data = form.cleaned_data
            try:
                rows = calculator_rows(
                    data["models"],
                    input_tokens=data["input_tokens"],
                    cached_tokens=data["cached_tokens"],
                    output_tokens=data["output_tokens"],
                )
            except ModelNotPriced as exc:
                form.add_error("models", exc.detail)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Cost calculator",
            "form": form,
            "rows": rows,
        }
        return TemplateResponse(request, "admin/usage/price/calculator.html", context)


# --- the ledger -------------------------------------------------------------------------------------------


class EstimatedCountPaginator(Paginator):  # type: ignore[type-arg]
    """On an unfiltered PostgreSQL table, page counts from the planner's row estimate instead of COUNT(*)
    over millions of rows; filtered lists (small by nature) are counted exactly. A partitioned table (the
    ledger) has no estimate of its own: its partitions' are summed."""

    estimate_above = 100_000

    @cached_property
    def count(self) -> int:
        query = getattr(self.object_list, "query", None)
        if connection.vendor == "postgresql" and query is not None and not query.where:
            with connection.cursor() as cursor:
                cursor.execute(
                    """
                    SELECT sum(greatest(c.reltuples, 0))::bigint FROM pg_class c
                    WHERE c.relkind <> 'p' AND (
                        c.oid = to_regclass(%s)
                        OR c.oid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = to_regclass(%s))
                    )
                    """,
                    [query.model._meta.db_table] * 2,
                )
                row = cursor.fetchone()
            if row and row[0] and row[0] > self.estimate_above:
                return int(row[0])
        return int(super().count)


@admin.register(UsageRecord)
class UsageRecordAdmin(ReadOnlyAdmin):
    list_display = [
        "request_id",
        "created_at",
        "environment",
        "api_client_name",
        "prompt_slug",
        "prompt_version",
        "endpoint",
        "model",
        "outcome",
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cost_usd",
        "latency_total_ms",
    ]
    list_filter = ["environment", "outcome", "endpoint", "model"]
    search_fields = ["request_id", "upstream_request_id", "prompt_slug", "api_client_name"]
    date_hierarchy = "created_at"
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    readonly_fields = [field.name for field in UsageRecord._meta.fields]
    change_list_template = "admin/usage/usagerecord/change_list.html"

    def get_urls(self) -> list[URLPattern]:
        return [
            path("dashboard/", self.admin_site.admin_view(self.dashboard_view), name="usage_dashboard"),
            *super().get_urls(),
        ]

    def dashboard_view(self, request: HttpRequest) -> HttpResponse:
        """Cost, tokens, latency, errors and budget burn, for whoever may read the ledger."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        form = DashboardForm(request.GET or None)
        filters = Filters.this_month()
        if form.is_bound and form.is_valid():
            data = form.cleaned_data
            filters = Filters(data["first_day"] or filters.first_day, data["last_day"] or filters.last_day,
                              data["environment"], data["stack_by"] or "feature")  # fmt: skip
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Usage dashboard",
            "form": form,
            "filters": filters,
            **dashboard(filters),
        }
        return TemplateResponse(request, "admin/usage/dashboard.html", context)


class DashboardForm(forms.Form):
    first_day = forms.DateField(label="From", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    last_day = forms.DateField(label="To", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    environment = forms.ChoiceField(choices=[("", "All"), *Environment.choices], required=False)
    stack_by = forms.ChoiceField(label="Cost by", choices=list(STACKS.items()), required=False)

    def clean(self) -> dict[str, Any]:
        """A period the charts can draw day by day: in order, at most MAX_DAYS long, and ending before the
        last date there is (the query runs to the day after it)."""
        data = super().clean() or {}
        default = Filters.this_month()
        first, last = data.get("first_day") or default.first_day, data.get("last_day") or default.last_day
        if last >= date.max:
            raise forms.ValidationError("The period must end before the year 9999 does.")
        if first > last:
            raise forms.ValidationError("The period must start on or before the day it ends.")
        if (last - first).days >= MAX_DAYS:
            raise forms.ValidationError(f"The period can be at most {MAX_DAYS} days long.")
        return data


# --- budget alerts ----------------------------------------------------------------------------------------


class AcknowledgeForm(forms.ModelForm):  # type: ignore[type-arg]
    class Meta:
        model = BudgetAlert
        fields = ["triage_note"]


@admin.register(BudgetAlert)
class BudgetAlertAdmin(SimpleHistoryAdmin):  # type: ignore[misc]
    form = AcknowledgeForm
    list_display = [
        "created_at",
        "label",
        "period",
        "period_start",
        "threshold_percent",
        "spent_usd",
        "limit_usd",
        "acknowledged_by",
    ]
    list_filter = ["threshold_percent", "period", "scope"]
    readonly_fields = [
        "scope",
        "scope_id",
        "label",
        "period",
        "period_start",
        "threshold_percent",
        "spent_usd",
        "limit_usd",
        "created_at",
        "acknowledged_by",
        "acknowledged_at",
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: BudgetAlert, form: forms.ModelForm, change: bool) -> None:  # type: ignore[type-arg]
        services.budget_alert_acknowledge(actor=_user(request), alert=obj, note=form.cleaned_data["triage_note"])


class MonitorAcknowledgeForm(forms.ModelForm):  # type: ignore[type-arg]
    class Meta:
        model = MonitorAlert
        fields = ["triage_note"]


@admin.register(MonitorAlert)
class MonitorAlertAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    form = MonitorAcknowledgeForm
    list_display = ["created_at", "kind", "subject", "window_start", "value", "threshold", "acknowledged_by"]
    list_filter = ["kind"]
    readonly_fields = [
        "kind", "subject", "window_start", "value", "threshold", "message", "created_at", "acknowledged_by",
        "acknowledged_at",
    ]  # fmt: skip

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: MonitorAlert, form: forms.ModelForm, change: bool) -> None:  # type: ignore[type-arg]
        monitor_alert_acknowledge(actor=_user(request), alert=obj, note=form.cleaned_data["triage_note"])
