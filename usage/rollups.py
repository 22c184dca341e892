"""The hourly roll-ups of the ledger (UsageRollup): added to with every ledger row, in its transaction.

Each addition is one `UPDATE … SET x = x + n` on the row of the hour and dimensions (inserted on first
use), so concurrent writers never lose an increment and take no lock beyond that row's update.
"""

from __future__ import annotations

import bisect
import hashlib
import json
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F

from usage.models import LATENCY_BUCKET_FIELDS, LATENCY_BUCKETS_MS, TTFT_BUCKET_FIELDS, UsageRecord, UsageRollup

DIMENSIONS = (
    "environment",
    "prompt_slug",
    "prompt_version",
    "model",
    "api_client_id",
    "api_client_name",
    "endpoint",
    "outcome",
    "feature",
    "user_tier",
)
MILLION = Decimal(1_000_000)


def bucket_index(ms: int) -> int:
    """The histogram bucket of `ms`: the first upper bound it does not exceed, or +Inf."""
    return bisect.bisect_left(LATENCY_BUCKETS_MS, ms)


def cache_savings(record: UsageRecord) -> Decimal:
    """What prompt caching saved on this call: cache reads at the input price less their price, minus the
    premium paid for cache writes."""
    price = record.price
    if price is None:
        return Decimal(0)
    saved = (
        record.cache_read_tokens * (price.input - price.cache_read)
        - record.cache_write_5m_tokens * (price.cache_write_5m - price.input)
        - record.cache_write_1h_tokens * (price.cache_write_1h - price.input)
    ) / MILLION
    return saved * price.batch_multiplier if record.endpoint == "batch" else saved


def _dimensions(record: UsageRecord) -> dict[str, Any]:
    return {
        "hour": record.created_at.replace(minute=0, second=0, microsecond=0),
        **{name: getattr(record, name) for name in DIMENSIONS},
    }


def _key(dimensions: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(dimensions, sort_keys=True, default=str).encode()).hexdigest()


def rollup_increments(record: UsageRecord) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """What one ledger row adds to its hour's roll-up: the row's key, its dimensions and the increments
    (only the non-zero ones)."""
    increments: dict[str, Any] = {
        "calls": 1,
        "input_tokens": record.input_tokens,
        "output_tokens": record.output_tokens,
        "cache_write_tokens": record.cache_write_5m_tokens + record.cache_write_1h_tokens,
        "cache_read_tokens": record.cache_read_tokens,
        "cost_usd": record.cost_usd,
        "default_model_cost_usd": (
            record.default_model_cost_usd if record.default_model_cost_usd is not None else record.cost_usd
        ),
        "cache_savings_usd": cache_savings(record),
    }
    if "passed" in (record.checks or {}):
        increments.update(checks_run=1, checks_passed=int(bool(record.checks["passed"])))
    if record.latency_total_ms is not None:
        increments.update(latency_count=1, latency_sum_ms=record.latency_total_ms)
        increments[LATENCY_BUCKET_FIELDS[bucket_index(record.latency_total_ms)]] = 1
    if record.time_to_first_token_ms is not None:
        increments.update(ttft_count=1, ttft_sum_ms=record.time_to_first_token_ms)
        increments[TTFT_BUCKET_FIELDS[bucket_index(record.time_to_first_token_ms)]] = 1
    dimensions = _dimensions(record)
    return _key(dimensions), dimensions, {name: value for name, value in increments.items() if value}


def rollup_add(record: UsageRecord) -> None:
    """Add one ledger row to its hour's roll-up. Call inside the transaction that wrote the row. (On
    PostgreSQL the settlement does the same in its one statement: usage.ledger_sql.)"""
    key, dimensions, increments = rollup_increments(record)
    add = {name: F(name) + value for name, value in increments.items()}
    if UsageRollup.objects.filter(key=key).update(**add):
        return
    try:
        with transaction.atomic():
            UsageRollup.objects.create(key=key, **dimensions, **increments)
    except IntegrityError:  # another writer inserted it first
        UsageRollup.objects.filter(key=key).update(**add)


def percentile(buckets: list[int], q: float) -> int | None:
    """The upper bound (ms) of the bucket holding the q-quantile (None: no data; a value past the last
    bound reports the last bound)."""
    total = sum(buckets)
    if not total:
        return None
    rank, seen = q * total, 0
    for bound, count in zip((*LATENCY_BUCKETS_MS, LATENCY_BUCKETS_MS[-1]), buckets, strict=True):
        seen += count
        if seen >= rank:
            return bound
    return LATENCY_BUCKETS_MS[-1]
