"""Usage reads: prices, spend, a prompt's traffic, worker liveness, and who each kind of alert is addressed
to."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db.models import F, Q, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from core.errors import ModelNotPriced
from core.roles import Role
from usage.choices import Endpoint, Outcome
from usage.models import BudgetAlert, MonitorAlert, Price, SpendCounter, UsageRollup
from usage.periods import period_start
from usage.pricing import TokenUsage, cost

_price_rows: dict[str, tuple[float, list[Price]]] = {}


def _prices(model: str) -> list[Price]:
    """A model's price rows, newest first, kept in this process for a minute: every run needs them, and
    a new price is added ahead of its effective date."""
    cached = _price_rows.get(model)
    if cached is not None and time.monotonic() - cached[0] < settings.TOLLGATE_PRICE_CACHE_SECONDS:
        return cached[1]
    rows = list(Price.objects.filter(model=model).order_by("-effective_from"))
    _price_rows[model] = (time.monotonic(), rows)
    return rows


def price_cache_clear() -> None:
    _price_rows.clear()


def price_for(model: str, *, at: datetime | None = None) -> Price:
    """The price in force for `model` at `at` (now by default). Raises ModelNotPriced."""
    moment = at or timezone.now()
    price = next((row for row in _prices(model) if row.effective_from <= moment), None)
    if price is None:
        raise ModelNotPriced(f"The price book has no price for '{model}'; add one before using the model.")
    return price


def priced_models(*, at: datetime | None = None) -> list[str]:
    return sorted(set(Price.objects.filter(effective_from__lte=at or timezone.now()).values_list("model", flat=True)))


def spent(*, scope: str, scope_id: int, period: str, at: datetime | None = None) -> Decimal:
    """Settled spend of one cap in the period containing `at`."""
    counter = SpendCounter.objects.filter(
        scope=scope, scope_id=scope_id, period=period, period_start=period_start(period, at or timezone.now())
    ).first()
    return counter.spent_usd if counter else Decimal(0)


def decimal_text(amount: Decimal) -> str:
    """A money amount as an exact decimal string without exponent or trailing zeros ("0.0105")."""
    text = format(amount, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def cost_estimate(*, model: str, usage: TokenUsage, batch: bool = False) -> dict[str, Any]:
    """What `usage` costs on `model` now, per request and per 1,000 requests, with the price used."""
    price = price_for(model)
    amount = cost(price, usage, batch=batch)
    return {
        "cost_usd": decimal_text(amount),
        "cost_per_1000_usd": decimal_text(amount * 1000),
        "price": price.as_dict(),
    }


GROUPINGS = {"day": TruncDate("hour"), "prompt": F("prompt_slug"), "model": F("model"), "feature": F("feature")}


@dataclass(frozen=True)
class PromptTraffic:
    """A prompt's answered calls in one environment over a window, from the hourly roll-ups."""

    calls: int
    cache_read_tokens: int
    cache_write_tokens: int


# Ledger endpoints that are not a prompt's traffic: counts, and tries of versions that are not live.
NOT_TRAFFIC = (Endpoint.COUNT_TOKENS, Endpoint.PLAYGROUND, Endpoint.EVALUATION)


def prompt_traffic(*, prompt_slug: str, environment: str, start: datetime, end: datetime) -> PromptTraffic:
    """The calls of `prompt_slug` in `environment` that Anthropic answered (outcome ok) in [start, end), any
    version, with their cache reads and writes. Left out: token counts (free, endpoint `count`), and the
    tries of versions that are not live (playground, evaluation), which a person makes at will in
    development and which would otherwise count as the live version's traffic there."""
    totals = (
        UsageRollup.objects.filter(
            prompt_slug=prompt_slug, environment=environment, outcome=Outcome.OK, hour__gte=start, hour__lt=end
        )
        .exclude(endpoint__in=NOT_TRAFFIC)
        .aggregate(calls=Sum("calls"), read=Sum("cache_read_tokens"), written=Sum("cache_write_tokens"))
    )
    return PromptTraffic(
        calls=totals["calls"] or 0,
        cache_read_tokens=totals["read"] or 0,
        cache_write_tokens=totals["written"] or 0,
    )


def usage_summary(*, api_client_id: int, start: date, end: date, group_by: str) -> dict[str, Any]:
    """One client's calls between two dates (inclusive, UTC): tokens, cost and counts per group. Read from
    the hourly roll-ups, which hold every dimension it groups by, so it costs the same at any ledger size
    (and still answers for months archived out of the ledger)."""
    rows = (
        UsageRollup.objects.filter(
            api_client_id=api_client_id,
            hour__gte=datetime.combine(start, datetime.min.time(), tzinfo=UTC),
            hour__lt=datetime.combine(end + timedelta(days=1), datetime.min.time(), tzinfo=UTC),
        )
        .annotate(group=GROUPINGS[group_by])
        .values("group")
        .annotate(
            n_calls=Sum("calls"),
            n_failed=Sum("calls", filter=~Q(outcome=Outcome.OK)),
            n_input=Sum("input_tokens"),
            n_output=Sum("output_tokens"),
            n_cache_write=Sum("cache_write_tokens"),
            n_cache_read=Sum("cache_read_tokens"),
            n_cost=Sum("cost_usd"),
        )
        .order_by("group")
    )
    groups = [
        {
            "key": str(row["group"]),
            "calls": row["n_calls"],
            "failed": row["n_failed"] or 0,
            "input_tokens": row["n_input"] or 0,
            "output_tokens": row["n_output"] or 0,
            "cache_creation_input_tokens": row["n_cache_write"] or 0,
            "cache_read_input_tokens": row["n_cache_read"] or 0,
            "cost_usd": decimal_text(row["n_cost"] or Decimal(0)),
        }
        for row in rows
    ]
    total_cost = sum((Decimal(group["cost_usd"]) for group in groups), Decimal(0))
    return {
        "from": start.isoformat(),
        "to": end.isoformat(),
        "group_by": group_by,
        "groups": groups,
        "total": {
            "calls": sum(group["calls"] for group in groups),
            "cost_usd": decimal_text(total_cost),
        },
    }


# --- alerts and who they are addressed to ------------------------------------------------------------------

# The roles each kind of alert is notified to (core.notifications.notify): its addressees. The notification
# services and the admin home page ("open alerts addressed to you") read the same table, so a person sees
# on the home page exactly the alerts they were sent.
ALERT_ADDRESSEES: dict[type[BudgetAlert] | type[MonitorAlert], tuple[Role, ...]] = {
    BudgetAlert: (Role.KEY_CUSTODIANS,),
    MonitorAlert: (Role.PROMPT_APPROVERS, Role.KEY_CUSTODIANS),
}


def alert_recipients(kind: type[BudgetAlert] | type[MonitorAlert]) -> QuerySet[User]:
    """The active people an alert of this kind is notified to: the members of its addressed roles."""
    roles = [role.value for role in ALERT_ADDRESSEES[kind]]
    return User.objects.filter(groups__name__in=roles, is_active=True).distinct()


def open_alerts_addressed_to(
    *, user: User, kind: type[BudgetAlert] | type[MonitorAlert], limit: int
) -> tuple[list[Any], int]:
    """The newest `limit` alerts of `kind` not yet acknowledged that were notified to `user`, and how many
    there are: none when the person is not one of its addressees (two queries; one when not addressed)."""
    roles = [role.value for role in ALERT_ADDRESSEES[kind]]
    if not user.is_active or not user.groups.filter(name__in=roles).exists():
        return [], 0
    open_alerts = kind.objects.filter(acknowledged_at__isnull=True).order_by("-created_at")
    alerts = list(open_alerts[: limit + 1])
    return alerts[:limit], len(alerts) if len(alerts) <= limit else open_alerts.count()
