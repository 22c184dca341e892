"""Usage reads: prices, spend, worker liveness."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from django.core.cache import cache
from django.utils import timezone

from usage.errors import ModelNotPriced
from usage.models import Price, SpendCounter
from usage.pricing import TokenUsage, cost
from usage.services import WORKER_HEARTBEAT_KEY, period_start


def worker_last_seen() -> datetime | None:
    """When a Celery worker last ran the heartbeat task, if one has in the last day."""
    value = cache.get(WORKER_HEARTBEAT_KEY)
    return datetime.fromisoformat(value) if value else None


def price_for(model: str, *, at: datetime | None = None) -> Price:
    """The price in force for `model` at `at` (now by default). Raises ModelNotPriced."""
    price = (
        Price.objects.filter(model=model, effective_from__lte=at or timezone.now()).order_by("-effective_from").first()
    )
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
