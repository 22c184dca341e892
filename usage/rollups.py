"""The hourly roll-ups of the ledger (UsageRollup): added to with every ledger row, in its transaction.

A roll-up row is locked while it is added to, so concurrent writers never lose an increment; each ledger
write touches exactly one roll-up row, so the locks cannot deadlock.
"""

from __future__ import annotations

import bisect
import hashlib
import json
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction

from usage.models import LATENCY_BUCKETS_MS, UsageRecord, UsageRollup

DIMENSIONS = (
    "environment",
    "prompt_slug",
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


def _locked_row(dimensions: dict[str, Any]) -> UsageRollup:
    key = _key(dimensions)
    row = UsageRollup.objects.select_for_update().filter(key=key).first()
    if row is not None:
        return row
    empty = [0] * (len(LATENCY_BUCKETS_MS) + 1)
    try:
        with transaction.atomic():
            return UsageRollup.objects.create(key=key, latency_buckets=empty, ttft_buckets=list(empty), **dimensions)
    except IntegrityError:  # another writer created it first
        return UsageRollup.objects.select_for_update().get(key=key)


def rollup_add(record: UsageRecord) -> None:
    """Add one ledger row to its hour's roll-up. Call inside the transaction that wrote the row."""
    row = _locked_row(_dimensions(record))
    row.calls += 1
    row.input_tokens += record.input_tokens
    row.output_tokens += record.output_tokens
    row.cache_write_tokens += record.cache_write_5m_tokens + record.cache_write_1h_tokens
    row.cache_read_tokens += record.cache_read_tokens
    row.cost_usd += record.cost_usd
    row.default_model_cost_usd += (
        record.default_model_cost_usd if record.default_model_cost_usd is not None else record.cost_usd
    )
    row.cache_savings_usd += cache_savings(record)
    if record.latency_total_ms is not None:
        row.latency_count += 1
        row.latency_sum_ms += record.latency_total_ms
        row.latency_buckets[bucket_index(record.latency_total_ms)] += 1
    if record.time_to_first_token_ms is not None:
        row.ttft_count += 1
        row.ttft_sum_ms += record.time_to_first_token_ms
        row.ttft_buckets[bucket_index(record.time_to_first_token_ms)] += 1
    row.save()


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
