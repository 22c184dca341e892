"""The published Anthropic prices (ANTHROPIC_API.md) that seed the price book, USD per million tokens.

Current prices are in force from 2024-01-01 (before Tollgate ran any call). Claude 3.5 Haiku keeps its
history: it launched at $1 / $5 and was cut to $0.80 / $4 (the date of the cut is approximate).
Seeded by a data migration and kept present after every `migrate` (and test flush); price rows are
never deleted, and a price change is a new row with its own effective date.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.apps import apps as global_apps
from django.db import DEFAULT_DB_ALIAS

SINCE = datetime(2024, 1, 1, tzinfo=UTC)

# (input, 5m write, 1h write, cache read, output, minimum cacheable tokens, long-context rule)
OPUS_45 = ("5", "6.25", "10", "0.50", "25", 4096, None)
OPUS_4 = ("15", "18.75", "30", "1.50", "75", 1024, None)
SONNET = ("3", "3.75", "6", "0.30", "15", 1024, None)
SONNET_LONG = ("3", "3.75", "6", "0.30", "15", 1024, (200_000, "2", "1.5"))
HAIKU_45 = ("1", "1.25", "2", "0.10", "5", 4096, None)
HAIKU_35 = ("0.80", "1", "1.6", "0.08", "4", 2048, None)
HAIKU_35_LAUNCH = ("1", "1.25", "2", "0.10", "5", 2048, None)
HAIKU_3 = ("0.25", "0.30", "0.50", "0.03", "1.25", 2048, None)

PRICES = {
    "claude-opus-4-5-20251101": OPUS_45,
    "claude-opus-4-5": OPUS_45,
    "claude-opus-4-6": OPUS_45,
    "claude-opus-4-1-20250805": OPUS_4,
    "claude-opus-4-1": OPUS_4,
    "claude-opus-4-20250514": OPUS_4,
    "claude-opus-4-0": OPUS_4,
    "claude-3-opus-20240229": OPUS_4,
    "claude-sonnet-4-6": SONNET,
    "claude-sonnet-4-5-20250929": SONNET_LONG,
    "claude-sonnet-4-5": SONNET_LONG,
    "claude-sonnet-4-20250514": SONNET_LONG,
    "claude-sonnet-4-0": SONNET_LONG,
    "claude-3-7-sonnet-20250219": SONNET,
    "claude-3-7-sonnet-latest": SONNET,
    "claude-3-5-sonnet-20241022": SONNET,
    "claude-haiku-4-5-20251001": HAIKU_45,
    "claude-haiku-4-5": HAIKU_45,
    "claude-3-haiku-20240307": HAIKU_3,
}
HAIKU_35_IDS = ("claude-3-5-haiku-20241022", "claude-3-5-haiku-latest")
HAIKU_35_LAUNCHED = datetime(2024, 11, 4, tzinfo=UTC)
HAIKU_35_CUT = datetime(2024, 12, 19, tzinfo=UTC)


def price_book_seed(*, apps: Any = global_apps, using: str = DEFAULT_DB_ALIAS) -> None:
    """Add every seeded price that is missing (idempotent; rows added or edited by staff are left alone)."""
    price_model = apps.get_model("usage", "Price")

    def add(model: str, since: datetime, row: tuple[Any, ...], note: str) -> None:
        inp, w5m, w1h, read, out, minimum, long_context = row
        threshold, in_mult, out_mult = long_context or (None, "1", "1")
        price_model.objects.using(using).get_or_create(
            model=model,
            effective_from=since,
            defaults={
                "input": Decimal(inp),
                "cache_write_5m": Decimal(w5m),
                "cache_write_1h": Decimal(w1h),
                "cache_read": Decimal(read),
                "output": Decimal(out),
                "batch_multiplier": Decimal("0.5"),
                "long_context_threshold": threshold,
                "long_context_input_multiplier": Decimal(in_mult),
                "long_context_output_multiplier": Decimal(out_mult),
                "min_cache_tokens": minimum,
                "note": note,
            },
        )

    for model, row in PRICES.items():
        add(model, SINCE, row, "Published price (seeded)")
    for model in HAIKU_35_IDS:
        add(model, HAIKU_35_LAUNCHED, HAIKU_35_LAUNCH, "Launch price (seeded)")
        add(model, HAIKU_35_CUT, HAIKU_35, "Price cut (seeded; date approximate)")
