"""Evidence types of usage: the ledger and budget alerts (audit.evidence)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.db import connection
from django.db.models import F, Func, TextField
from django.db.models.functions import Cast

from audit.evidence import EvidenceType, Period, register, utc_text
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


# On PostgreSQL the database writes the time too, as audit.evidence.utc_text() would.
PG_UTC_TEXT = "to_char(%(expressions)s AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"')"


def _ledger_rows(period: Period) -> Iterator[tuple[Any, ...]]:
    """Tuples in column order, every value formatted for the files."""
    rows = UsageRecord.objects.filter(created_at__gte=period.start, created_at__lt=period.end).order_by("id")
    columns: list[Any] = [Cast(column, TextField()) if column in AS_TEXT else column for column in LEDGER_COLUMNS]
    at = LEDGER_COLUMNS.index("created_at")
    if connection.vendor == "postgresql":
        columns[at] = Func(F("created_at"), template=PG_UTC_TEXT, output_field=TextField())
        yield from rows.values_list(*columns).iterator(chunk_size=5000)
        return
    for row in rows.values_list(*columns).iterator(chunk_size=5000):
        yield (*row[:at], utc_text(row[at]), *row[at + 1 :])


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
