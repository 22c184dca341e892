"""The usage dashboard's figures, read from the hourly roll-ups (a month is a few thousand rows however
many million calls it holds) and the spend counters, and the specs of its charts.

Each chart is one aggregate query. A spec (`chart_spec`) is what `templates/admin/_chart.html` draws with
Chart.js and prints as a table underneath: labels, datasets, type, stacking and unit.
"""

from __future__ import annotations

import calendar
import operator
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from functools import reduce
from typing import Any

from django.db.models import F, Q, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from usage.choices import UPSTREAM_ERRORS, CapScope, Period
from usage.models import LATENCY_BUCKET_FIELDS, TTFT_BUCKET_FIELDS, SpendCounter, SpendReservation, UsageRollup
from usage.periods import period_start
from usage.rollups import percentile

BREAKDOWNS = {
    "feature": "feature",
    "user_tier": "user tier",
    "endpoint": "endpoint",
    "prompt_slug": "prompt",
    "model": "model",
    "api_client_name": "API client",
}


# The longest period the dashboard draws, day by day.
MAX_DAYS = 366


@dataclass(frozen=True)
class Filters:
    first_day: date
    last_day: date
    environment: str = ""
    stack_by: str = "feature"

    @classmethod
    def this_month(cls, environment: str = "") -> Filters:
        today = timezone.now().astimezone(UTC).date()
        return cls(today.replace(day=1), today, environment)


def _rollups(filters: Filters) -> QuerySet[UsageRollup]:
    start = datetime.combine(filters.first_day, time.min, tzinfo=UTC)
    end = datetime.combine(filters.last_day + timedelta(days=1), time.min, tzinfo=UTC)
    rows = UsageRollup.objects.filter(hour__gte=start, hour__lt=end)
    return rows.filter(environment=filters.environment) if filters.environment else rows


def _cost(rows: QuerySet[UsageRollup]) -> Decimal:
    return rows.aggregate(total=Sum("cost_usd"))["total"] or Decimal(0)


def headline(environment: str = "") -> dict[str, Decimal]:
    """Today, month to date, and the month-end projection at this month's daily rate."""
    now = timezone.now().astimezone(UTC)
    month = Filters.this_month(environment)
    to_date = _cost(_rollups(month))
    days_in_month = calendar.monthrange(now.year, now.month)[1]
    elapsed_days = Decimal(now.day - 1) + Decimal(now.hour * 60 + now.minute) / Decimal(1440)
    projection = to_date / elapsed_days * days_in_month if elapsed_days else to_date
    return {
        "today": _cost(_rollups(Filters(now.date(), now.date(), environment))),
        "month_to_date": to_date,
        "projection": projection.quantize(Decimal("0.01")),
    }


def breakdown(filters: Filters, dimension: str) -> list[dict[str, Any]]:
    rows = (
        _rollups(filters)
        .values(dimension)
        .annotate(cost=Sum("cost_usd"), calls=Sum("calls"))
        .order_by("-cost", dimension)
    )
    return [{"label": row[dimension] or "—", "cost": row["cost"] or Decimal(0), "calls": row["calls"]} for row in rows]


def tokens(filters: Filters) -> dict[str, Any]:
    sums = _rollups(filters).aggregate(
        input=Sum("input_tokens"),
        output=Sum("output_tokens"),
        cache_write=Sum("cache_write_tokens"),
        cache_read=Sum("cache_read_tokens"),
        cache_savings=Sum("cache_savings_usd"),
        cost=Sum("cost_usd"),
        default_cost=Sum("default_model_cost_usd"),
    )
    prompt_side = (sums["input"] or 0) + (sums["cache_write"] or 0) + (sums["cache_read"] or 0)
    return {
        "input": sums["input"] or 0,
        "output": sums["output"] or 0,
        "cache_write": sums["cache_write"] or 0,
        "cache_read": sums["cache_read"] or 0,
        "cache_hit_ratio": (sums["cache_read"] or 0) / prompt_side if prompt_side else None,
        "cache_savings": sums["cache_savings"] or Decimal(0),
        "routing_savings": (sums["default_cost"] or Decimal(0)) - (sums["cost"] or Decimal(0)),
    }


def latency(filters: Filters) -> list[dict[str, Any]]:
    """p50 / p95 of total latency and of time to first token, per prompt and model (histogram estimates:
    the upper bound of the bucket holding the percentile). The database sums the buckets."""
    fields = (*LATENCY_BUCKET_FIELDS, *TTFT_BUCKET_FIELDS)
    rows = (
        _rollups(filters)
        .values("prompt_slug", "model")
        .annotate(**{field: Sum(field) for field in fields})
        .order_by("prompt_slug", "model")
    )
    result = []
    for row in rows:
        latency_buckets = [row[field] or 0 for field in LATENCY_BUCKET_FIELDS]
        ttft_buckets = [row[field] or 0 for field in TTFT_BUCKET_FIELDS]
        result.append(
            {
                "prompt": row["prompt_slug"] or "—",
                "model": row["model"],
                "calls": sum(latency_buckets),
                "p50": percentile(latency_buckets, 0.5),
                "p95": percentile(latency_buckets, 0.95),
                "ttft_p50": percentile(ttft_buckets, 0.5),
                "ttft_p95": percentile(ttft_buckets, 0.95),
            }
        )
    return result


def quality(filters: Filters) -> list[dict[str, Any]]:
    """Per prompt version: answers its output checks ran on, and the share that passed."""
    rows = (
        _rollups(filters)
        .filter(checks_run__gt=0)
        .values("prompt_slug", "prompt_version")
        .annotate(run=Sum("checks_run"), passed=Sum("checks_passed"))
        .order_by("prompt_slug", "-prompt_version")
    )
    return [
        {
            "prompt": row["prompt_slug"],
            "version": row["prompt_version"],
            "checked": row["run"],
            "pass_rate": row["passed"] / row["run"],
        }
        for row in rows
    ]


# --- per day ------------------------------------------------------------------------------------------------

# Dimensions the cost per day can be stacked by, and how many series it draws before "others".
STACKS = {"feature": "feature", "model": "model"}
STACK_SERIES = 8
OTHERS = "others"
# Amounts are drawn and printed to 1/100 of a cent, rates to 1/10 of a percent.
CENT_HUNDREDTH = Decimal("0.0001")


def _day() -> TruncDate:
    return TruncDate("hour", tzinfo=UTC)


def days(filters: Filters) -> list[date]:
    """Every day of the period, so that a day without calls is a day on the chart."""
    return [filters.first_day + timedelta(days=n) for n in range((filters.last_day - filters.first_day).days + 1)]


def cost_per_day(filters: Filters, stack_by: str) -> dict[str, Any]:
    """Cost per day, one series per value of `stack_by` (feature or model): the `STACK_SERIES` costliest
    of the period and the rest summed as "others", so each day's series add up to its total."""
    rows = _rollups(filters).values(day=_day(), value=F(stack_by)).annotate(cost=Sum("cost_usd")).order_by()
    cost: dict[str, dict[date, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for row in rows:
        cost[row["value"] or "—"][row["day"]] += row["cost"] or Decimal(0)
    ranked = sorted(cost, key=lambda value: (-sum(cost[value].values()), value))
    series = {value: cost[value] for value in ranked[:STACK_SERIES]}
    if len(ranked) > STACK_SERIES:
        others: dict[date, Decimal] = defaultdict(Decimal)
        for value in ranked[STACK_SERIES:]:
            for day, amount in cost[value].items():
                others[day] += amount
        series[OTHERS] = others
    period = days(filters)
    return {
        "days": period,
        "series": {value: [by_day.get(day, Decimal(0)) for day in period] for value, by_day in series.items()},
        "totals": [sum((by_day.get(day, Decimal(0)) for by_day in cost.values()), Decimal(0)) for day in period],
    }


def latency_per_day(filters: Filters) -> list[dict[str, Any]]:
    """Per day: p50 / p95 of total latency and of time to first token (histogram estimates, as in
    `latency`); None on a day without a measurement."""
    fields = (*LATENCY_BUCKET_FIELDS, *TTFT_BUCKET_FIELDS)
    rows = _rollups(filters).values(day=_day()).annotate(**{field: Sum(field) for field in fields}).order_by()
    by_day = {row["day"]: row for row in rows}
    result = []
    for day in days(filters):
        row = by_day.get(day, {})
        latency_buckets = [row.get(field) or 0 for field in LATENCY_BUCKET_FIELDS]
        ttft_buckets = [row.get(field) or 0 for field in TTFT_BUCKET_FIELDS]
        result.append(
            {
                "day": day,
                "p50": percentile(latency_buckets, 0.5),
                "p95": percentile(latency_buckets, 0.95),
                "ttft_p50": percentile(ttft_buckets, 0.5),
                "ttft_p95": percentile(ttft_buckets, 0.95),
            }
        )
    return result


def errors_by_day(filters: Filters) -> list[dict[str, Any]]:
    """Per day with calls: calls, and the share failed per upstream error class."""
    counts: dict[date, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for row in _rollups(filters).values("outcome", day=_day()).annotate(calls=Sum("calls")).order_by():
        counts[row["day"]]["calls"] += row["calls"]
        counts[row["day"]][row["outcome"]] += row["calls"]
    return [
        {
            "day": day,
            "calls": by_outcome["calls"],
            "rates": {outcome.label: by_outcome[outcome.value] / by_outcome["calls"] for outcome in UPSTREAM_ERRORS},
        }
        for day, by_outcome in sorted(counts.items())
        if by_outcome["calls"]
    ]


# --- caps -----------------------------------------------------------------------------------------------------


def budget_burn() -> list[dict[str, Any]]:
    """This period's spend per cap, named and limited as the latest reservation against it recorded (with
    the environment it was made in: a provider key serves one environment)."""
    now = timezone.now()
    caps: dict[int, dict[str, Any]] = {}
    for reservation in SpendReservation.objects.order_by("-id").only("holds", "ledger")[:2000]:
        for hold in reservation.holds:
            caps.setdefault(hold["counter"], {**hold, "environment": (reservation.ledger or {}).get("environment")})
    burn = []
    for counter in SpendCounter.objects.filter(pk__in=caps):
        if counter.period_start != period_start(counter.period, now):
            continue
        hold = caps[counter.pk]
        limit = Decimal(hold["limit_usd"])
        burn.append(
            {
                "label": hold.get("label") or f"{counter.scope} {counter.scope_id}",
                "scope": counter.get_scope_display(),
                "period": counter.get_period_display(),
                "spent": counter.spent_usd,
                "reserved": counter.reserved_usd,
                "limit": limit,
                "percent": float(counter.spent_usd / limit * 100) if limit else None,
                "cap": {
                    "scope": counter.scope,
                    "scope_id": counter.scope_id,
                    "period": counter.period,
                    "period_start": counter.period_start,
                    "environment": hold["environment"],
                },
            }
        )
    return sorted(burn, key=lambda row: -(row["percent"] or 0))


def burn_down(burn: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per cap of `budget_burn`, the days of this month and what was spent against the cap's limit.

    A monthly cap: the spend summed from the 1st to each day, from the roll-ups (an API client's calls, or
    the calls of the environment a provider key serves). A daily cap: each day's spend, from that day's
    counter. Two queries for all caps, however many."""
    today = timezone.now().astimezone(UTC).date()
    month = [today.replace(day=1) + timedelta(days=n) for n in range(today.day)]
    monthly = {
        id(row): where for row in burn if row["cap"]["period"] == Period.MONTH and (where := _rollup_filter(row["cap"]))
    }
    daily = [row for row in burn if row["cap"]["period"] == Period.DAY]

    # (scope, API client id or environment) → day → spend; (scope, scope id) → day → spend.
    rollup_spend: dict[tuple[str, Any], dict[date, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    counter_spend: dict[tuple[str, int], dict[date, Decimal]] = defaultdict(dict)
    if monthly:
        rows = (
            UsageRollup.objects.filter(reduce(operator.or_, monthly.values()))
            .filter(hour__gte=datetime.combine(month[0], time.min, tzinfo=UTC))
            .values("api_client_id", "environment", day=_day())
            .annotate(cost=Sum("cost_usd"))
            .order_by()
        )
        for rollup in rows:
            rollup_spend[(CapScope.API_CLIENT, rollup["api_client_id"])][rollup["day"]] += rollup["cost"]
            rollup_spend[(CapScope.PROVIDER_KEY, rollup["environment"])][rollup["day"]] += rollup["cost"]
    if daily:
        caps = reduce(operator.or_, (Q(scope=row["cap"]["scope"], scope_id=row["cap"]["scope_id"]) for row in daily))
        counters = SpendCounter.objects.filter(caps, period=Period.DAY, period_start__gte=month[0])
        for scope, scope_id, day, amount in counters.values_list("scope", "scope_id", "period_start", "spent_usd"):
            counter_spend[(scope, scope_id)][day] = amount

    result = []
    for row in burn:
        cap = row["cap"]
        spent: list[Decimal] = []
        if id(row) in monthly:
            by_day = rollup_spend[
                (cap["scope"], cap["scope_id"] if cap["scope"] == CapScope.API_CLIENT else cap["environment"])
            ]
            running = Decimal(0)
            for day in month:
                running += by_day.get(day, Decimal(0))
                spent.append(running)
        elif cap["period"] == Period.DAY:
            spent = [counter_spend[(cap["scope"], cap["scope_id"])].get(day, Decimal(0)) for day in month]
        else:
            continue
        result.append(
            {"label": row["label"], "period": cap["period"], "days": month, "spent": spent, "limit": row["limit"]}
        )
    return result


def _rollup_filter(cap: dict[str, Any]) -> Q | None:
    if cap["scope"] == CapScope.API_CLIENT:
        return Q(api_client_id=cap["scope_id"])
    if cap["environment"]:
        return Q(environment=cap["environment"])
    return None  # a provider key whose environment no reservation recorded


# --- chart specs ------------------------------------------------------------------------------------------


def figure(value: Any, unit: str) -> str:
    """A value as the chart's table prints it (and its tooltip shows it)."""
    if value is None:
        return "—"
    if unit == "$":
        return f"${Decimal(value):,.4f}"
    if unit == "%":
        return f"{Decimal(value):.1f}%"
    return f"{value:,} {unit}".rstrip()


def chart_spec(
    *,
    type: str,
    labels: list[str],
    datasets: list[dict[str, Any]],
    unit: str,
    stacked: bool = False,
    horizontal: bool = False,
) -> dict[str, Any]:
    """What `templates/admin/_chart.html` draws: `datasets` are {"label", "data"} (one value per label,
    None for no value) and optionally "type" ("line" over bars) and "dashed". Amounts are passed as
    strings, exactly; `rows` is the same figures as a table."""
    return {
        "type": type,
        "labels": labels,
        "datasets": [
            {**dataset, "data": [None if value is None else str(value) for value in dataset["data"]]}
            for dataset in datasets
        ],
        "unit": unit,
        "stacked": stacked,
        "horizontal": horizontal,
        "empty": not any(value for dataset in datasets for value in dataset["data"]),
        "rows": [
            [label, *(figure(dataset["data"][index], unit) for dataset in datasets)]
            for index, label in enumerate(labels)
        ],
    }


def _money(value: Decimal) -> Decimal:
    return value.quantize(CENT_HUNDREDTH)


def _percent(rate: float) -> Decimal:
    return Decimal(str(round(rate * 100, 1)))


def cost_chart(filters: Filters) -> dict[str, Any]:
    cost = cost_per_day(filters, filters.stack_by)
    return chart_spec(
        type="bar",
        labels=[day.isoformat() for day in cost["days"]],
        datasets=[
            {"label": value, "data": [_money(amount) for amount in by_day]} for value, by_day in cost["series"].items()
        ],
        unit="$",
        stacked=True,
    )


def latency_chart(filters: Filters) -> dict[str, Any]:
    rows = latency_per_day(filters)
    names = {"p50": "p50", "p95": "p95", "ttft_p50": "TTFT p50", "ttft_p95": "TTFT p95"}
    return chart_spec(
        type="line",
        labels=[row["day"].isoformat() for row in rows],
        datasets=[{"label": label, "data": [row[name] for row in rows]} for name, label in names.items()],
        unit="ms",
    )


def errors_chart(filters: Filters) -> dict[str, Any]:
    by_day = {row["day"]: row for row in errors_by_day(filters)}
    period = days(filters)
    return chart_spec(
        type="line",
        labels=[day.isoformat() for day in period],
        datasets=[
            {
                "label": outcome.label,
                "data": [_percent(by_day[day]["rates"][outcome.label]) if day in by_day else None for day in period],
            }
            for outcome in UPSTREAM_ERRORS
        ],
        unit="%",
    )


def breakdown_chart(filters: Filters, dimension: str) -> dict[str, Any]:
    rows = breakdown(filters, dimension)[:12]
    return chart_spec(
        type="bar",
        labels=[row["label"] for row in rows],
        datasets=[{"label": "Cost", "data": [_money(row["cost"]) for row in rows]}],
        unit="$",
        horizontal=True,
    )


def burn_down_chart(cap: dict[str, Any]) -> dict[str, Any]:
    monthly = cap["period"] == Period.MONTH
    return chart_spec(
        type="line" if monthly else "bar",
        labels=[day.isoformat() for day in cap["days"]],
        datasets=[
            {"label": "Spent this month" if monthly else "Spent that day", "data": [_money(v) for v in cap["spent"]]},
            {"label": "Cap", "data": [_money(cap["limit"])] * len(cap["days"]), "type": "line", "dashed": True},
        ],
        unit="$",
    )


def dashboard(filters: Filters) -> dict[str, Any]:
    budget = budget_burn()
    return {
        "headline": headline(filters.environment),
        "cost_chart": cost_chart(filters),
        "cost_chart_title": f"Cost per day by {STACKS[filters.stack_by]}",
        "latency_chart": latency_chart(filters),
        "errors_chart": errors_chart(filters),
        "breakdowns": [
            {"id": f"cost-by-{name}", "title": f"Cost by {title}", "chart": breakdown_chart(filters, name)}
            for name, title in BREAKDOWNS.items()
        ],
        "tokens": tokens(filters),
        "latency": latency(filters),
        "quality": quality(filters),
        "budget": budget,
        "burn_down": [
            {"id": f"burn-down-{index}", "title": f"{cap['label']}: {cap['period']} cap", "chart": burn_down_chart(cap)}
            for index, cap in enumerate(burn_down(budget), start=1)
        ],
    }
