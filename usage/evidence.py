"""Evidence types of usage: the ledger and budget alerts (audit.evidence)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.db.models import TextField
from django.db.models.functions import Cast

from audit.evidence import EvidenceType, Period, register
from usage.models import BudgetAlert, UsageRecord

LEDGER_COLUMNS = (
    "id",
    "request_id",
    "created_at",
    "environment",
    "api_client_id",
    "api_client_name",
    "provider_key_id",
    "provider_key_last_four",
    "prompt_slug",
    "prompt_version",
    "endpoint",
    "requested_model",
    "model",
    "routing_rule",
    "input_tokens",
    "output_tokens",
    "cache_write_5m_tokens",
    "cache_write_1h_tokens",
    "cache_read_tokens",
    "cost_usd",
    "default_model_cost_usd",
    "price_id",
    "latency_total_ms",
    "latency_upstream_ms",
    "time_to_first_token_ms",
    "outcome",
    "error_class",
    "retries",
    "upstream_request_id",
    "stop_reason",
    "redactions",
    "checks",
    "feature",
    "user_tier",
    "end_user",
)


# Read as the database's text: JSON not parsed and re-encoded, decimals not made into objects and back
# (this export runs to millions of rows). PostgreSQL writes JSON as JSON and decimals to their 10 places.
AS_TEXT = {"redactions", "checks", "cost_usd", "default_model_cost_usd"}


def _ledger_rows(period: Period) -> Iterator[tuple[Any, ...]]:
    """Tuples in column order."""
    rows = UsageRecord.objects.filter(created_at__gte=period.start, created_at__lt=period.end).order_by("id")
    columns = [Cast(column, TextField()) if column in AS_TEXT else column for column in LEDGER_COLUMNS]
    yield from rows.values_list(*columns).iterator(chunk_size=5000)


ALERT_COLUMNS = (
    "id",
    "created_at",
    "scope",
    "label",
    "period",
    "period_start",
    "threshold_percent",
    "spent_usd",
    "limit_usd",
    "acknowledged_by",
    "acknowledged_at",
    "triage_note",
)


def _alert_rows(period: Period) -> Iterator[dict[str, Any]]:
    alerts = BudgetAlert.objects.filter(created_at__gte=period.start, created_at__lt=period.end).order_by("id")
    for alert in alerts.select_related("acknowledged_by").iterator(chunk_size=1000):
        yield {
            **{column: getattr(alert, column) for column in ALERT_COLUMNS if column != "acknowledged_by"},
            "acknowledged_by": alert.acknowledged_by.get_username() if alert.acknowledged_by else "",
        }


def register_all() -> None:
    register(
        EvidenceType(
            name="usage_ledger",
            title="Usage ledger",
            description="Every upstream call of the period: tokens, cost and the price-book entry that "
            "priced it, latency, outcome and error class. No prompt bodies, no secrets, no redacted values.",
            columns=LEDGER_COLUMNS,
            rows=_ledger_rows,
        )
    )
    register(
        EvidenceType(
            name="alerts",
            title="Alerts",
            description="Budget alerts raised in the period, with who acknowledged them, when, and their "
            "triage notes (CC7.2).",
            columns=ALERT_COLUMNS,
            rows=_alert_rows,
        )
    )
