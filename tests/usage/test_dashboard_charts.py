"""The dashboard's charts over time: what each selector draws from the roll-ups and counters, and that no
filter input breaks the page."""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import time_machine
from django.db import transaction
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from usage.choices import CapScope, Period
from usage.dashboard import (
    OTHERS,
    STACK_SERIES,
    Filters,
    breakdown_chart,
    budget_burn,
    burn_down,
    burn_down_chart,
    cost_chart,
    cost_per_day,
    errors_chart,
    latency_chart,
    latency_per_day,
)
from usage.models import SpendCounter, SpendReservation, UsageRollup

pytestmark = pytest.mark.django_db

MARCH = Filters(date(2026, 3, 1), date(2026, 3, 3), "production")
DASHBOARD = "/admin/usage/usagerecord/dashboard/"


def rollup(day: date, hour: int = 9, **fields: Any) -> UsageRollup:
    """One roll-up row (the dimensions that matter to the test; a unique key stands for the rest)."""
    base = {"environment": "production", "model": "claude-haiku-4-5", "endpoint": "run", "outcome": "ok", "calls": 1}
    return UsageRollup.objects.create(
        key=uuid.uuid4().hex, hour=datetime(day.year, day.month, day.day, hour, tzinfo=UTC), **{**base, **fields}
    )


def column(spec: dict[str, Any], label: str) -> list[str | None]:
    return next(dataset["data"] for dataset in spec["datasets"] if dataset["label"] == label)


# --- cost per day ---------------------------------------------------------------------------------------------


def test_costs_stacked_by_feature_or_model_add_up_to_each_days_total():
    rollup(date(2026, 3, 1), feature="search", cost_usd=Decimal("1.25"))
    rollup(date(2026, 3, 1), hour=15, feature="search", model="claude-sonnet-4-6", cost_usd=Decimal("0.75"))
    rollup(date(2026, 3, 1), feature="", cost_usd=Decimal("0.10"))
    rollup(date(2026, 3, 3), feature="chat", model="claude-sonnet-4-6", cost_usd=Decimal("3.00"))
    rollup(date(2026, 3, 3), feature="chat", environment="staging", cost_usd=Decimal("50"))  # another environment

    by_feature = cost_per_day(MARCH, "feature")
    by_model = cost_per_day(MARCH, "model")

    assert by_feature["days"] == [date(2026, 3, 1), date(2026, 3, 2), date(2026, 3, 3)]
    assert by_feature["totals"] == by_model["totals"] == [Decimal("2.10"), 0, Decimal("3.00")]
    assert by_feature["series"] == {
        "chat": [0, 0, Decimal("3.00")],
        "search": [Decimal("2.00"), 0, 0],
        "—": [Decimal("0.10"), 0, 0],
    }
    assert by_model["series"] == {
        "claude-sonnet-4-6": [Decimal("0.75"), 0, Decimal("3.00")],
        "claude-haiku-4-5": [Decimal("1.35"), 0, 0],
    }
    spec = cost_chart(Filters(MARCH.first_day, MARCH.last_day, "production", "model"))
    assert (spec["type"], spec["stacked"], spec["unit"]) == ("bar", True, "$")
    assert column(spec, "claude-sonnet-4-6") == ["0.7500", "0.0000", "3.0000"]
    assert spec["rows"][0] == ["2026-03-01", "$0.7500", "$1.3500"]


def test_beyond_the_costliest_features_the_rest_are_summed_as_others():
    for index in range(STACK_SERIES + 3):
        rollup(date(2026, 3, 2), feature=f"feature-{index:02}", cost_usd=Decimal(index + 1))

    cost = cost_per_day(MARCH, "feature")

    assert len(cost["series"]) == STACK_SERIES + 1
    assert "feature-00" not in cost["series"]  # the cheapest three
    assert cost["series"][OTHERS][1] == Decimal(1 + 2 + 3)
    assert sum(series[1] for series in cost["series"].values()) == cost["totals"][1] == Decimal(sum(range(1, 12)))


# --- latency ----------------------------------------------------------------------------------------------


def test_percentiles_per_day_come_from_the_days_summed_buckets():
    # 1 March: 10 calls ≤ 50 ms in one hour, 10 ≤ 500 ms in another; the day's p50 is 50, its p95 500.
    rollup(date(2026, 3, 1), hour=1, latency_b0=10, ttft_b2=19)
    rollup(date(2026, 3, 1), hour=2, latency_b4=10, ttft_b11=1)
    # 3 March: 1 call past the last bound (reported as the last bound).
    rollup(date(2026, 3, 3), latency_b11=1)

    day_1, day_2, day_3 = latency_per_day(MARCH)

    assert (day_1["p50"], day_1["p95"], day_1["ttft_p50"], day_1["ttft_p95"]) == (50, 500, 200, 200)
    assert (day_2["p50"], day_2["p95"], day_2["ttft_p50"]) == (None, None, None)
    assert (day_3["p50"], day_3["p95"], day_3["ttft_p95"]) == (30000, 30000, None)
    spec = latency_chart(MARCH)
    assert column(spec, "p95") == ["500", None, "30000"]
    assert spec["rows"][1] == ["2026-03-02", "—", "—", "—", "—"]
    assert spec["rows"][0] == ["2026-03-01", "50 ms", "500 ms", "200 ms", "200 ms"]


# --- errors -----------------------------------------------------------------------------------------------


def test_error_rates_per_class_are_shares_of_each_days_calls():
    rollup(date(2026, 3, 1), outcome="ok", calls=6)
    rollup(date(2026, 3, 1), hour=10, outcome="overloaded", calls=2)
    rollup(date(2026, 3, 1), hour=11, outcome="timeout", calls=1)
    rollup(date(2026, 3, 1), hour=12, outcome="timeout", calls=1)
    rollup(date(2026, 3, 3), outcome="rate_limited", calls=3)

    spec = errors_chart(MARCH)

    assert spec["unit"] == "%"
    assert column(spec, "Overloaded") == ["20.0", None, "0.0"]
    assert column(spec, "Timeout") == ["20.0", None, "0.0"]
    assert column(spec, "Rate limited") == ["0.0", None, "100.0"]
    assert spec["rows"][0][1:] == ["0.0%", "20.0%", "0.0%", "20.0%"]


# --- budget burn-down -------------------------------------------------------------------------------------

NOW = datetime(2026, 3, 5, 12, tzinfo=UTC)


def cap_counter(scope: str, scope_id: int, period: str, start: date, spent: str, limit: str, **ledger: Any) -> None:
    counter = SpendCounter.objects.create(
        scope=scope, scope_id=scope_id, period=period, period_start=start, spent_usd=Decimal(spent)
    )
    hold = {"counter": counter.pk, "scope": scope, "scope_id": scope_id, "period": period, "limit_usd": limit,
            "label": f"{scope} {scope_id} {period}", "threshold_percent": 80}  # fmt: skip
    SpendReservation.objects.create(request_id="r", amount_usd=Decimal(0), holds=[hold], ledger=ledger)


def test_a_monthly_caps_burn_down_is_the_spend_summed_to_each_day_against_the_cap():
    with time_machine.travel(NOW, tick=False):
        cap_counter(CapScope.API_CLIENT, 7, Period.MONTH, date(2026, 3, 1), "6", "10", environment="production")
        cap_counter(CapScope.PROVIDER_KEY, 3, Period.MONTH, date(2026, 3, 1), "9", "20", environment="staging")
        for day, cost in ((1, "1"), (3, "2"), (5, "3")):
            rollup(date(2026, 3, day), api_client_id=7, cost_usd=Decimal(cost))
        rollup(date(2026, 3, 2), api_client_id=8, cost_usd=Decimal(100))  # another client, same environment
        rollup(date(2026, 2, 28), api_client_id=7, cost_usd=Decimal(100))  # last month
        rollup(date(2026, 3, 2), environment="staging", cost_usd=Decimal("4.5"))
        rollup(date(2026, 3, 4), environment="staging", api_client_id=9, cost_usd=Decimal("4.5"))

        charts = {cap["label"]: cap for cap in burn_down(budget_burn())}

    client = charts["api_client 7 month"]
    assert client["days"] == [date(2026, 3, day) for day in range(1, 6)]
    assert client["spent"] == [1, 1, 3, 3, 6]
    assert client["limit"] == 10
    assert charts["provider_key 3 month"]["spent"] == [0, Decimal("4.5"), Decimal("4.5"), 9, 9]
    spec = burn_down_chart(client)
    assert spec["type"] == "line"
    assert column(spec, "Cap") == ["10.0000"] * 5
    assert column(spec, "Spent this month") == ["1.0000", "1.0000", "3.0000", "3.0000", "6.0000"]


def test_a_daily_caps_burn_down_is_each_days_spend_from_its_counter():
    with time_machine.travel(NOW, tick=False):
        for day, spent in ((2, "1.5"), (4, "2")):
            SpendCounter.objects.create(scope=CapScope.PROVIDER_KEY, scope_id=3, period=Period.DAY,
                                        period_start=date(2026, 3, day), spent_usd=Decimal(spent))  # fmt: skip
        SpendCounter.objects.create(scope=CapScope.PROVIDER_KEY, scope_id=4, period=Period.DAY,
                                    period_start=date(2026, 3, 2), spent_usd=Decimal(50))  # another key  # fmt: skip
        cap_counter(CapScope.PROVIDER_KEY, 3, Period.DAY, date(2026, 3, 5), "0.5", "2", environment="production")

        (cap,) = burn_down(budget_burn())

    assert cap["spent"] == [0, Decimal("1.5"), 0, 2, Decimal("0.5")]
    spec = burn_down_chart(cap)
    assert spec["type"] == "bar"
    assert column(spec, "Cap") == ["2.0000"] * 5
    assert spec["rows"][1] == ["2026-03-02", "$1.5000", "$2.0000"]


def test_caps_of_a_past_period_are_not_drawn():
    with time_machine.travel(NOW, tick=False):
        cap_counter(CapScope.API_CLIENT, 7, Period.MONTH, date(2026, 2, 1), "6", "10", environment="production")

        assert burn_down(budget_burn()) == []


# --- empty periods and bounded queries --------------------------------------------------------------------


def test_an_empty_period_draws_no_chart_and_says_so(client, approver):
    long_ago = Filters(date(2020, 1, 1), date(2020, 1, 31))

    for spec in (cost_chart(long_ago), latency_chart(long_ago), errors_chart(long_ago)):
        assert spec["empty"]
        assert len(spec["labels"]) == 31
    assert cost_per_day(long_ago, "feature")["totals"] == [0] * 31
    assert {row["p95"] for row in latency_per_day(long_ago)} == {None}
    assert breakdown_chart(long_ago, "model")["labels"] == []

    client.force_login(approver)
    html = client.get(DASHBOARD, {"first_day": "2020-01-01", "last_day": "2020-01-31"}).content.decode()
    assert "<canvas" not in html
    assert html.count("No data in this period.") >= 9


def test_each_chart_is_one_aggregate_query(django_assert_num_queries):
    for day in range(1, 4):
        for feature in ("a", "b", "c"):
            rollup(date(2026, 3, day), feature=feature, cost_usd=Decimal(1), latency_b3=2, outcome="timeout")

    for draw in (cost_chart, latency_chart, errors_chart):
        with django_assert_num_queries(1):
            draw(MARCH)
    with django_assert_num_queries(1):
        breakdown_chart(MARCH, "feature")


def test_the_burn_down_of_every_cap_takes_two_queries(django_assert_num_queries):
    with time_machine.travel(NOW, tick=False):
        for scope_id in range(5):
            cap_counter(CapScope.API_CLIENT, scope_id, Period.MONTH, date(2026, 3, 1), "1", "10")
            cap_counter(CapScope.PROVIDER_KEY, scope_id, Period.DAY, date(2026, 3, 5), "1", "10")
        burn = budget_burn()
        assert len(burn) == 10

        with django_assert_num_queries(2):
            burn_down(burn)


# --- properties -------------------------------------------------------------------------------------------

generated_rollups = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=2),  # day of MARCH
        st.integers(min_value=0, max_value=23),  # hour
        st.sampled_from(["", "search", "chat", "triage", *"abcdefghij"]),  # more than STACK_SERIES
        st.sampled_from(["claude-haiku-4-5", "claude-sonnet-4-6", "claude-opus-4-5"]),
        st.decimals(min_value=0, max_value=1000, places=4),
    ),
    max_size=40,
)


@hypothesis_settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(rows=generated_rollups, stack_by=st.sampled_from(["feature", "model"]))
@example(rows=[(n % 3, n, feature, "claude-haiku-4-5", Decimal(n + 1)) for n, feature in enumerate("abcdefghijk")],
         stack_by="feature")  # fmt: skip
def test_generated_rollups_stack_up_to_each_days_total(rows, stack_by):
    with transaction.atomic():
        expected: dict[int, Decimal] = defaultdict(Decimal)
        for day, hour, feature, model, cost in rows:
            rollup(date(2026, 3, 1 + day), hour=hour, feature=feature, model=model, cost_usd=cost)
            expected[day] += cost

        cost = cost_per_day(MARCH, stack_by)

        for index in range(3):
            assert sum((series[index] for series in cost["series"].values()), Decimal(0)) == cost["totals"][index]
            assert cost["totals"][index] == expected[index]
        assert len(cost["series"]) <= STACK_SERIES + 1
        transaction.set_rollback(True)


dates = st.one_of(
    st.dates().map(date.isoformat),
    st.sampled_from(["0001-01-01", "9999-12-31", "9999-12-30", "2026-02-30", "2026-13-01", "", "yesterday"]),
    st.text(max_size=20),
)


@hypothesis_settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(
    query=st.fixed_dictionaries(
        {},
        optional={
            "first_day": dates,
            "last_day": dates,
            "environment": st.one_of(st.sampled_from(["", "production", "staging"]), st.text(max_size=10)),
            "stack_by": st.one_of(st.sampled_from(["feature", "model", "prompt_slug"]), st.text(max_size=10)),
        },
    )
)
@example(query={"first_day": "0001-01-01", "last_day": "9999-12-31"})
@example(query={"first_day": "9999-12-31"})
@example(query={"first_day": "9999-12-31", "last_day": "9999-12-31"})
@example(query={"last_day": "0001-01-01"})
@example(query={"first_day": "2026-01-01", "last_day": "2025-01-01"})
@example(query={"first_day": "2024-01-01", "last_day": "2025-01-01"})
def test_no_filter_input_breaks_the_dashboard(client, approver, query):
    client.force_login(approver)

    response = client.get(DASHBOARD, query)

    assert response.status_code == 200
    filters = response.context["filters"]
    assert filters.first_day <= filters.last_day
    assert (filters.last_day - filters.first_day).days < 366


def test_a_period_too_long_or_backwards_is_refused_and_this_month_shown(client, approver):
    client.force_login(approver)

    too_long = client.get(DASHBOARD, {"first_day": "2024-01-01", "last_day": "2025-01-01"})
    backwards = client.get(DASHBOARD, {"first_day": "2026-01-02", "last_day": "2026-01-01"})

    assert "at most 366 days" in too_long.content.decode()
    assert "must start on or before" in backwards.content.decode()
    assert too_long.context["filters"].first_day.day == 1
    assert len(too_long.context["cost_chart"]["labels"]) == too_long.context["filters"].last_day.day


def test_the_stacking_switch_is_a_filter_of_the_form(client, approver):
    rollup(datetime.now(tz=UTC).date(), feature="search", model="claude-sonnet-4-6", cost_usd=Decimal(1))
    client.force_login(approver)

    by_model = client.get(DASHBOARD, {"stack_by": "model"}).context["cost_chart"]
    by_feature = client.get(DASHBOARD).context["cost_chart"]

    assert [dataset["label"] for dataset in by_model["datasets"]] == ["claude-sonnet-4-6"]
    assert [dataset["label"] for dataset in by_feature["datasets"]] == ["search"]


def test_days_are_counted_in_utc_at_the_edges_of_the_period():
    rollup(date(2026, 3, 1), hour=0, cost_usd=Decimal(1))
    rollup(date(2026, 3, 3), hour=23, cost_usd=Decimal(2))
    rollup(date(2026, 3, 4), hour=0, cost_usd=Decimal(4))  # the day after
    rollup(date(2026, 2, 28), hour=23, cost_usd=Decimal(8))  # the day before

    assert cost_per_day(MARCH, "model")["totals"] == [1, 0, 2]
    assert cost_per_day(Filters(date(2026, 3, 1), date(2026, 3, 1) + timedelta(days=0)), "model")["totals"] == [1]
