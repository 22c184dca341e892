"""Price book, spend counters and reservations, the usage ledger and budget alerts.

This app imports no other app but `audit`: what it records about clients, keys and prompts it stores as
ids and names taken at the time (a ledger row is evidence on its own).
"""

from __future__ import annotations

from contextvars import ContextVar
from decimal import Decimal
from typing import Any, NoReturn

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.utils import timezone
from simple_history.models import HistoricalRecords

from core.governance import history_user
from usage.choices import CapScope, Endpoint, Outcome, Period, ReservationStatus
from usage.periods import reservation_ttl

# Prices per million tokens to 1/100 of a cent; amounts to 1e-10 USD, so that a single cached token at
# a batch discount is still exact.
NON_NEGATIVE = [MinValueValidator(Decimal(0))]


class Price(models.Model):
    """What one model costs from a date on, in USD per million tokens. Never edited in place once in
    force: a price change is a new row with its own effective date, so old calls keep their price."""

    model = models.CharField(max_length=100, help_text="A model id or alias, exactly as requested.")
    effective_from = models.DateTimeField()
    input = models.DecimalField("input", max_digits=12, decimal_places=4, validators=NON_NEGATIVE)
    cache_write_5m = models.DecimalField(
        "5-minute cache write", max_digits=12, decimal_places=4, validators=NON_NEGATIVE
    )
    cache_write_1h = models.DecimalField("1-hour cache write", max_digits=12, decimal_places=4, validators=NON_NEGATIVE)
    cache_read = models.DecimalField("cache read", max_digits=12, decimal_places=4, validators=NON_NEGATIVE)
    output = models.DecimalField("output", max_digits=12, decimal_places=4, validators=NON_NEGATIVE)
    batch_multiplier = models.DecimalField(max_digits=5, decimal_places=4, default=Decimal("0.5"))
    long_context_threshold = models.PositiveIntegerField(
        null=True, blank=True, help_text="Prompts longer than this many tokens are billed at the multipliers below."
    )
    long_context_input_multiplier = models.DecimalField(max_digits=5, decimal_places=4, default=Decimal(1))
    long_context_output_multiplier = models.DecimalField(max_digits=5, decimal_places=4, default=Decimal(1))
    min_cache_tokens = models.PositiveIntegerField(default=1024, help_text="Shorter prefixes are not cached.")
    note = models.CharField(max_length=200, blank=True)

    history = HistoricalRecords(get_user=history_user)

    class Meta:
        ordering = ["model", "-effective_from"]
        constraints = [models.UniqueConstraint(fields=["model", "effective_from"], name="price_once_per_date")]
        indexes = [models.Index(fields=["model", "effective_from"])]

    def __str__(self) -> str:
        return f"{self.model} from {self.effective_from.date().isoformat()}"

    def clean(self) -> None:
        # A call's worst case is priced from this row: a model that cost nothing would let every call past
        # every cap.
        free = [name for name in ("input", "output") if getattr(self, name) is not None and getattr(self, name) <= 0]
        if free:
            raise ValidationError(dict.fromkeys(free, "Must be more than zero: caps are reserved at these prices."))

    def as_dict(self) -> dict[str, str | int | None]:
        return {
            "model": self.model,
            "effective_from": self.effective_from.isoformat(),
            "input": str(self.input),
            "cache_write_5m": str(self.cache_write_5m),
            "cache_write_1h": str(self.cache_write_1h),
            "cache_read": str(self.cache_read),
            "output": str(self.output),
            "batch_multiplier": str(self.batch_multiplier),
            "long_context_threshold": self.long_context_threshold,
            "per": "USD per million tokens",
        }


class SpendCounter(models.Model):
    """What one cap has spent and holds reserved in one calendar period (UTC)."""

    scope = models.CharField(max_length=20, choices=CapScope.choices)
    scope_id = models.PositiveBigIntegerField()
    period = models.CharField(max_length=5, choices=Period.choices)
    period_start = models.DateField()
    spent_usd = models.DecimalField(default=Decimal(0), max_digits=20, decimal_places=10)
    reserved_usd = models.DecimalField(default=Decimal(0), max_digits=20, decimal_places=10)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["scope", "scope_id", "period", "period_start"], name="spend_counter_unique")
        ]

    def __str__(self) -> str:
        return f"{self.scope} {self.scope_id} {self.period} {self.period_start}"


def _reservation_expiry() -> Any:
    return timezone.now() + reservation_ttl()


class SpendReservation(models.Model):
    """The worst-case cost held against every applicable cap while one upstream call is in flight.

    It is also the call's write-ahead record: `ledger` holds the ledger row's identifying fields, so a
    reservation whose holder died (a killed process) is closed by the reaper with a ledger row of its
    own. Settling (or releasing) and writing the call's ledger row happen in one transaction, so a
    reservation still `held` means its call has no ledger row yet.
    """

    request_id = models.CharField(max_length=128, db_index=True)
    amount_usd = models.DecimalField(max_digits=20, decimal_places=10)
    # One entry per cap held: {"counter", "scope", "scope_id", "period", "limit", "label", "threshold"}.
    holds = models.JSONField(default=list)
    status = models.CharField(max_length=10, choices=ReservationStatus.choices, default=ReservationStatus.HELD)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    # After this, the holder is presumed dead and the reaper closes the reservation.
    expires_at = models.DateTimeField(default=_reservation_expiry, db_index=True)
    ledger = models.JSONField(default=dict, blank=True)
    # What was spent. A batch's reservation holds for many calls: while it is held, each item's cost is
    # added here with the item's ledger row, and it settles at that sum (usage.settlement).
    settled_usd = models.DecimalField(null=True, blank=True, max_digits=20, decimal_places=10)
    closed_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"reservation {self.pk} ({self.status}, {self.amount_usd} USD)"


# Open only while usage.settlement writes a call's row together with the spend counted for it: the ledger
# has that one way in, so no path can write a row beside its settlement (or a second row for its call).
ledger_gate: ContextVar[bool] = ContextVar("ledger_gate", default=False)


class UsageRecordQuerySet(models.QuerySet["UsageRecord"]):
    """The ledger is append-only: the bulk paths that would change it are closed, and rows come in
    through the settlement only."""

    def update(self, **kwargs: Any) -> NoReturn:
        raise LedgerIsAppendOnly("Usage records cannot be updated.")

    def delete(self) -> NoReturn:
        raise LedgerIsAppendOnly("Usage records cannot be deleted.")

    def bulk_create(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise LedgerWriteRefused("Usage records are written one call at a time by usage.settlement.call_settle.")


class LedgerIsAppendOnly(Exception):
    """Raised on any attempt to change or remove a usage record."""


class LedgerWriteRefused(Exception):
    """Raised on an attempt to write a usage record other than through usage.settlement.call_settle."""


class UsageRecord(models.Model):
    """One upstream call, successful or not (docs/contract.md §7). Never a prompt body, secret or redacted value."""

    request_id = models.CharField(max_length=128, db_index=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    environment = models.CharField(max_length=12)
    api_client_id = models.PositiveBigIntegerField(null=True, blank=True)
    api_client_name = models.CharField(max_length=100, blank=True)
    provider_key_id = models.PositiveBigIntegerField(null=True, blank=True)
    provider_key_last_four = models.CharField(max_length=4, blank=True)
    prompt_id = models.PositiveBigIntegerField(null=True, blank=True)
    prompt_slug = models.CharField(max_length=80, blank=True)
    prompt_version = models.PositiveIntegerField(null=True, blank=True)
    endpoint = models.CharField(max_length=10, choices=Endpoint.choices)
    requested_model = models.CharField(max_length=100)
    model = models.CharField("routed model", max_length=100)
    routing_rule = models.CharField(max_length=100, blank=True)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    cache_write_5m_tokens = models.PositiveIntegerField(default=0)
    cache_write_1h_tokens = models.PositiveIntegerField(default=0)
    cache_read_tokens = models.PositiveIntegerField(default=0)
    cost_usd = models.DecimalField(default=Decimal(0), max_digits=20, decimal_places=10)
    default_model_cost_usd = models.DecimalField(
        null=True,
        blank=True,
        max_digits=20,
        decimal_places=10,
        help_text="What the call would have cost on the default model.",
    )
    price = models.ForeignKey(Price, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    latency_total_ms = models.PositiveIntegerField(null=True, blank=True)
    latency_upstream_ms = models.PositiveIntegerField(null=True, blank=True)
    time_to_first_token_ms = models.PositiveIntegerField(null=True, blank=True)
    outcome = models.CharField(max_length=15, choices=Outcome.choices)
    error_class = models.CharField(max_length=100, blank=True)
    retries = models.PositiveSmallIntegerField(default=0)
    upstream_request_id = models.CharField(max_length=100, blank=True)
    stop_reason = models.CharField(max_length=40, blank=True)
    redactions = models.JSONField(default=dict, blank=True)
    checks = models.JSONField(default=dict, blank=True)
    feature = models.CharField(max_length=100, blank=True)
    user_tier = models.CharField(max_length=50, blank=True)
    end_user = models.CharField(max_length=200, blank=True)
    # Names the upstream call (a run's id, a batch item's `<batch id>/<custom_id>`; empty for a refusal at a
    # cap and a batch's failed submission, which hold no reservation): a second settlement of the call, or
    # one overlapping it, cannot write its row twice. On PostgreSQL the ledger is partitioned by month and a
    # unique index cannot span partitions: a trigger keeps the id unique over all of them (migration 0009).
    call_id = models.CharField(max_length=150, null=True, blank=True, unique=True, editable=False)

    objects = UsageRecordQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["api_client_id", "created_at"]),
            models.Index(fields=["prompt_id", "created_at"]),
            models.Index(fields=["model", "created_at"]),
            models.Index(fields=["environment", "created_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.request_id} {self.model} {self.outcome}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise LedgerIsAppendOnly("Usage records cannot be updated.")
        if not ledger_gate.get():
            raise LedgerWriteRefused("Usage records are written by usage.settlement.call_settle.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise LedgerIsAppendOnly("Usage records cannot be deleted.")


# Upper bounds (ms) of the latency histogram buckets kept per roll-up row; the last bucket is +Inf.
LATENCY_BUCKETS_MS = (50, 100, 200, 300, 500, 750, 1000, 2000, 5000, 10000, 30000)
BUCKET_COUNT = len(LATENCY_BUCKETS_MS) + 1
LATENCY_BUCKET_FIELDS = tuple(f"latency_b{index}" for index in range(BUCKET_COUNT))
TTFT_BUCKET_FIELDS = tuple(f"ttft_b{index}" for index in range(BUCKET_COUNT))


class UsageRollup(models.Model):
    """The ledger summed per hour and dimension, maintained with every ledger row (same transaction), so
    that dashboards and /metrics read thousands of rows instead of millions. Latency and time to first
    token are kept as histograms (`LATENCY_BUCKETS_MS`, one column a bucket, so the database sums them)
    from which percentiles are estimated."""

    key = models.CharField(max_length=64, unique=True, editable=False, help_text="SHA-256 of the dimensions.")
    hour = models.DateTimeField(db_index=True)
    environment = models.CharField(max_length=12)
    prompt_slug = models.CharField(max_length=80, blank=True)
    prompt_version = models.PositiveIntegerField(null=True, blank=True)
    model = models.CharField(max_length=100)
    api_client_id = models.PositiveBigIntegerField(null=True, blank=True)
    api_client_name = models.CharField(max_length=100, blank=True)
    endpoint = models.CharField(max_length=10)
    outcome = models.CharField(max_length=15)
    feature = models.CharField(max_length=100, blank=True)
    user_tier = models.CharField(max_length=50, blank=True)
    calls = models.PositiveBigIntegerField(default=0)
    input_tokens = models.PositiveBigIntegerField(default=0)
    output_tokens = models.PositiveBigIntegerField(default=0)
    cache_write_tokens = models.PositiveBigIntegerField(default=0)
    cache_read_tokens = models.PositiveBigIntegerField(default=0)
    cost_usd = models.DecimalField(default=Decimal(0), max_digits=24, decimal_places=10)
    default_model_cost_usd = models.DecimalField(default=Decimal(0), max_digits=24, decimal_places=10)
    cache_savings_usd = models.DecimalField(default=Decimal(0), max_digits=24, decimal_places=10)
    checks_run = models.PositiveBigIntegerField(default=0, help_text="Answers the version's output checks ran on.")
    checks_passed = models.PositiveBigIntegerField(default=0)
    latency_count = models.PositiveBigIntegerField(default=0)
    latency_sum_ms = models.PositiveBigIntegerField(default=0)
    # Histogram counts: bucket i holds values up to LATENCY_BUCKETS_MS[i]; the last one, the rest (+Inf).
    latency_b0 = models.PositiveBigIntegerField(default=0)
    latency_b1 = models.PositiveBigIntegerField(default=0)
    latency_b2 = models.PositiveBigIntegerField(default=0)
    latency_b3 = models.PositiveBigIntegerField(default=0)
    latency_b4 = models.PositiveBigIntegerField(default=0)
    latency_b5 = models.PositiveBigIntegerField(default=0)
    latency_b6 = models.PositiveBigIntegerField(default=0)
    latency_b7 = models.PositiveBigIntegerField(default=0)
    latency_b8 = models.PositiveBigIntegerField(default=0)
    latency_b9 = models.PositiveBigIntegerField(default=0)
    latency_b10 = models.PositiveBigIntegerField(default=0)
    latency_b11 = models.PositiveBigIntegerField(default=0)
    ttft_count = models.PositiveBigIntegerField(default=0)
    ttft_sum_ms = models.PositiveBigIntegerField(default=0)
    ttft_b0 = models.PositiveBigIntegerField(default=0)
    ttft_b1 = models.PositiveBigIntegerField(default=0)
    ttft_b2 = models.PositiveBigIntegerField(default=0)
    ttft_b3 = models.PositiveBigIntegerField(default=0)
    ttft_b4 = models.PositiveBigIntegerField(default=0)
    ttft_b5 = models.PositiveBigIntegerField(default=0)
    ttft_b6 = models.PositiveBigIntegerField(default=0)
    ttft_b7 = models.PositiveBigIntegerField(default=0)
    ttft_b8 = models.PositiveBigIntegerField(default=0)
    ttft_b9 = models.PositiveBigIntegerField(default=0)
    ttft_b10 = models.PositiveBigIntegerField(default=0)
    ttft_b11 = models.PositiveBigIntegerField(default=0)

    class Meta:
        ordering = ["-hour"]
        indexes = [models.Index(fields=["environment", "hour"])]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H:00} {self.environment} {self.prompt_slug} {self.model} {self.outcome}"


class BudgetAlert(models.Model):
    """Spend on a cap crossed a threshold in a period: raised once, then acknowledged and triaged."""

    scope = models.CharField(max_length=20, choices=CapScope.choices)
    scope_id = models.PositiveBigIntegerField()
    label = models.CharField(max_length=200)
    period = models.CharField(max_length=5, choices=Period.choices)
    period_start = models.DateField()
    threshold_percent = models.PositiveSmallIntegerField()
    spent_usd = models.DecimalField(max_digits=20, decimal_places=10)
    limit_usd = models.DecimalField(max_digits=20, decimal_places=10)
    created_at = models.DateTimeField(default=timezone.now)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    triage_note = models.TextField(blank=True)

    history = HistoricalRecords(get_user=history_user)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["scope", "scope_id", "period", "period_start", "threshold_percent"], name="budget_alert_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.label}: {self.threshold_percent}% of the {self.period} cap"


class MonitorAlert(models.Model):
    """A condition seen in one hour of the roll-ups — p95 latency of a prompt over the threshold, or an
    upstream error class over its share of calls — raised once per condition and hour, then
    acknowledged with a triage note."""

    class Kind(models.TextChoices):
        LATENCY_P95 = "latency_p95", "p95 latency"
        ERROR_RATE = "error_rate", "Error rate"
        QUALITY_DRIFT = "quality_drift", "Quality drift"

    kind = models.CharField(max_length=20, choices=Kind.choices, editable=False)
    subject = models.CharField(max_length=200, editable=False, help_text="What the condition is about.")
    window_start = models.DateTimeField(editable=False, help_text="The hour evaluated (UTC).")
    value = models.FloatField(editable=False)
    threshold = models.FloatField(editable=False)
    message = models.TextField(editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+", editable=False
    )
    acknowledged_at = models.DateTimeField(null=True, blank=True, editable=False)
    triage_note = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["kind", "subject", "window_start"], name="monitor_alert_once"),
        ]

    def __str__(self) -> str:
        return self.message
