"""The usage dashboard's figures, read from the hourly roll-ups (a month is a few thousand rows however
many million calls it holds), and its charts, drawn server-side as SVG."""

from __future__ import annotations

import calendar
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import QuerySet, Sum
from django.utils import timezone
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from usage.choices import UPSTREAM_ERRORS
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


@dataclass(frozen=True)
class Filters:
    first_day: date
    last_day: date
    environment: str = ""

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


def errors_by_day(filters: Filters) -> list[dict[str, Any]]:
    """Per day: calls, and the share failed per upstream error class."""
    days: dict[date, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for row in _rollups(filters).values("hour", "outcome").annotate(calls=Sum("calls")):
        day = days[row["hour"].astimezone(UTC).date()]
        day["calls"] += row["calls"]
        day[row["outcome"]] += row["calls"]
    return [
        {
            "day": day,
            "calls": counts["calls"],
            "rates": {outcome.label: counts[outcome.value] / counts["calls"] for outcome in UPSTREAM_ERRORS},
        }
        for day, counts in sorted(days.items())
    ]


def cost_by_day(filters: Filters) -> list[tuple[str, Decimal]]:
    days: dict[date, Decimal] = defaultdict(Decimal)
    for row in _rollups(filters).values("hour").annotate(cost=Sum("cost_usd")):
        days[row["hour"].astimezone(UTC).date()] += row["cost"] or Decimal(0)
    return [(f"{day:%m-%d}", cost) for day, cost in sorted(days.items())]


def budget_burn() -> list[dict[str, Any]]:
    """This period's spend per cap, named and limited as the latest reservation against it recorded."""
    now = timezone.now()
    caps: dict[int, dict[str, Any]] = {}
    for reservation in SpendReservation.objects.order_by("-id").only("holds")[:2000]:
        for hold in reservation.holds:
            caps.setdefault(hold["counter"], hold)
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
            }
        )
    return sorted(burn, key=lambda row: -(row["percent"] or 0))


def bar_chart(rows: list[tuple[str, Any]], *, unit: str = "$", width: int = 560) -> SafeString:
    """Horizontal bars, one per (label, value): an SVG drawn here, so the page needs no script or CDN."""
    if not rows:
        return mark_safe('<p class="help">No data in this period.</p>')
    top = max(float(value) for _, value in rows) or 1.0
    bar_height, label_width = 22, 170
    height = bar_height * len(rows) + 4
    parts = [
        f'<svg role="img" class="chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'xmlns="http://www.w3.org/2000/svg" font-size="12" font-family="sans-serif">'
    ]
    for index, (label, value) in enumerate(rows):
        y = index * bar_height + 2
        length = max(1.0, (width - label_width - 90) * float(value) / top)
        text = f"{unit}{float(value):,.4f}" if unit == "$" else f"{float(value):,.0f}{unit}"
        parts.append(
            f'<text x="0" y="{y + 15}">{escape(str(label))[:28]}</text>'
            f'<rect x="{label_width}" y="{y + 3}" width="{length:.1f}" height="{bar_height - 6}" fill="#417690">'
            f"<title>{escape(str(label))}: {escape(text)}</title></rect>"
            f'<text x="{label_width + length + 6:.1f}" y="{y + 15}">{escape(text)}</text>'
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308  (every label and value above is escaped)


def dashboard(filters: Filters) -> dict[str, Any]:
    return {
        "headline": headline(filters.environment),
        "cost_by_day": bar_chart(cost_by_day(filters)),
        "breakdowns": [
            {"title": title, "chart": bar_chart([(row["label"], row["cost"]) for row in breakdown(filters, name)][:12])}
            for name, title in BREAKDOWNS.items()
        ],
        "tokens": tokens(filters),
        "latency": latency(filters),
        "quality": quality(filters),
        "errors": errors_by_day(filters),
        "error_classes": [outcome.label for outcome in UPSTREAM_ERRORS],
        "budget": budget_burn(),
    }
