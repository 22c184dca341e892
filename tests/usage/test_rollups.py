"""The hourly roll-ups equal aggregates over the raw ledger, whatever the ledger holds."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from usage.models import LATENCY_BUCKET_FIELDS, LATENCY_BUCKETS_MS, UsageRecord, UsageRollup
from usage.rollups import DIMENSIONS, bucket_index, cache_savings, percentile
from usage.selectors import price_for
from usage.settlement import call_settle

pytestmark = pytest.mark.django_db

START = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)

records = st.lists(
    st.fixed_dictionaries(
        {
            "created_at": st.integers(0, 4 * 3600 - 1).map(lambda s: START + timedelta(seconds=s)),
            "environment": st.sampled_from(["production", "staging"]),
            "prompt_slug": st.sampled_from(["summary", "triage"]),
            "model": st.sampled_from(["claude-haiku-4-5", "claude-sonnet-4-6"]),
            "endpoint": st.sampled_from(["run", "stream", "job", "batch"]),
            "outcome": st.sampled_from(["ok", "ok", "overloaded", "timeout"]),
            "feature": st.sampled_from(["", "search"]),
            "input_tokens": st.integers(0, 5000),
            "output_tokens": st.integers(0, 2000),
            "cache_read_tokens": st.integers(0, 3000),
            "cache_write_5m_tokens": st.integers(0, 1000),
            "cost_usd": st.decimals(0, 5, places=6),
            "latency_total_ms": st.none() | st.integers(0, 40_000),
            "time_to_first_token_ms": st.none() | st.integers(0, 3_000),
        }
    ),
    max_size=30,
)


def nonzero(sums: Counter) -> dict:
    return {name: value for name, value in sums.items() if value != 0}


class _Rollback(Exception):
    """Undo one example's rows (the ledger itself refuses deletes)."""


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=records)
def test_rollups_equal_aggregates_over_the_raw_ledger(db, rows):
    try:
        with transaction.atomic():
            for row in rows:
                price = price_for(row["model"])
                call_settle(record={"request_id": "r", "requested_model": row["model"], "price": price, **row})
            expected: dict[tuple, Counter] = defaultdict(Counter)
            for record in UsageRecord.objects.all():
                hour = record.created_at.replace(minute=0, second=0, microsecond=0)
                sums = expected[(hour, *(getattr(record, name) for name in DIMENSIONS))]
                sums.update(
                    calls=1, input_tokens=record.input_tokens, output_tokens=record.output_tokens,
                    cache_read_tokens=record.cache_read_tokens,
                    cache_write_tokens=record.cache_write_5m_tokens + record.cache_write_1h_tokens,
                    latency_count=record.latency_total_ms is not None, latency_sum_ms=record.latency_total_ms or 0,
                    ttft_count=record.time_to_first_token_ms is not None,
                )  # fmt: skip
                sums["cost_usd"] += record.cost_usd
                sums["cache_savings_usd"] += cache_savings(record)
                if record.latency_total_ms is not None:
                    sums[f"latency_bucket_{bucket_index(record.latency_total_ms)}"] += 1

            actual: dict[tuple, Counter] = {}
            for rollup in UsageRollup.objects.all():
                sums = Counter(
                    {
                        field: getattr(rollup, field)
                        for field in (
                            "calls",
                            "input_tokens",
                            "output_tokens",
                            "cache_read_tokens",
                            "cache_write_tokens",
                            "latency_count",
                            "latency_sum_ms",
                            "ttft_count",
                            "cost_usd",
                            "cache_savings_usd",
                        )
                    }
                )
                sums.update({f"latency_bucket_{i}": getattr(rollup, f) for i, f in enumerate(LATENCY_BUCKET_FIELDS)})
                actual[(rollup.hour, *(getattr(rollup, name) for name in DIMENSIONS))] = nonzero(sums)

            assert {key: nonzero(sums) for key, sums in expected.items()} == actual
            raise _Rollback
    except _Rollback:
        pass


def test_latency_buckets_and_percentiles():
    assert [bucket_index(ms) for ms in (0, 50, 51, 999, 1000, 30000, 30001)] == [0, 0, 1, 6, 6, 10, 11]
    buckets = [0] * (len(LATENCY_BUCKETS_MS) + 1)
    for ms in [40] * 50 + [180] * 45 + [900] * 4 + [60_000]:
        buckets[bucket_index(ms)] += 1

    assert percentile(buckets, 0.5) == 50
    assert percentile(buckets, 0.95) == 200
    assert percentile(buckets, 0.99) == 1000
    assert percentile(buckets, 1.0) == 30000  # past the last bound: reported as the last bound
    assert percentile([0] * len(buckets), 0.5) is None


def test_a_ledger_row_and_its_rollup_are_written_together_or_not_at_all():
    def failing_change() -> None:
        with transaction.atomic():
            call_settle(record={"request_id": "r", "environment": "production", "endpoint": "run",
                                "requested_model": "m", "model": "m", "outcome": "ok",
                                "cost_usd": Decimal(1)})  # fmt: skip
            raise RuntimeError("the caller's transaction fails")

    with pytest.raises(RuntimeError):
        failing_change()

    assert not UsageRecord.objects.exists()
    assert not UsageRollup.objects.exists()
