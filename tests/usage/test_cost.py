"""Cost against hand-computed cases for every pricing dimension and model family."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from core.errors import ModelNotPriced
from usage.pricing import TokenUsage, cost
from usage.selectors import price_for

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("model", "usage", "batch", "expected"),
    [
        # (1,000 × 3 + 500 × 15) / 1e6
        ("claude-sonnet-4-5", TokenUsage(input_tokens=1000, output_tokens=500), False, "0.0105"),
        # 5-minute cache write at 3.75: (100 × 3 + 2,000 × 3.75 + 100 × 15) / 1e6
        (
            "claude-sonnet-4-6",
            TokenUsage(input_tokens=100, cache_write_5m_tokens=2000, output_tokens=100),
            False,
            "0.0093",
        ),
        # 1-hour cache write at 2 × the input price of Haiku 4.5
        ("claude-haiku-4-5", TokenUsage(cache_write_1h_tokens=5000), False, "0.01"),
        # cache reads at a tenth of Opus 4.5's input price: (10 × 5 + 10,000 × 0.5) / 1e6
        ("claude-opus-4-5", TokenUsage(input_tokens=10, cache_read_tokens=10_000), False, "0.00505"),
        # Opus 4.1 at the old Opus prices
        ("claude-opus-4-1-20250805", TokenUsage(input_tokens=10**6, output_tokens=10**6), False, "90"),
        # batch halves every category: (0.25 + 1.25) × 0.5
        ("claude-3-haiku-20240307", TokenUsage(input_tokens=10**6, output_tokens=10**6), True, "0.75"),
        ("claude-3-haiku-20240307", TokenUsage(cache_read_tokens=10**6, cache_write_5m_tokens=10**6), True, "0.165"),
        # long context: 210,000 prompt tokens > 200,000 on Sonnet 4.5: input × 2, output × 1.5
        # ((150,000 × 3 + 60,000 × 0.3) × 2 + 1,000 × 15 × 1.5) / 1e6
        (
            "claude-sonnet-4-5",
            TokenUsage(input_tokens=150_000, cache_read_tokens=60_000, output_tokens=1000),
            False,
            "0.9585",
        ),
        # exactly at the threshold is not long context
        ("claude-sonnet-4-5", TokenUsage(input_tokens=200_000), False, "0.6"),
        # Sonnet 4.6 has no long-context surcharge in the price book
        (
            "claude-sonnet-4-6",
            TokenUsage(input_tokens=150_000, cache_read_tokens=60_000, output_tokens=1000),
            False,
            "0.483",
        ),
    ],
)
def test_cost_matches_the_hand_computed_figure(model, usage, batch, expected):
    result = cost(price_for(model), usage, batch=batch)

    assert isinstance(result, Decimal)
    assert result == Decimal(expected)


def test_caching_is_not_priced_as_fresh_input():
    price = price_for("claude-sonnet-4-5")
    cached = cost(price, TokenUsage(input_tokens=100, cache_read_tokens=9_900, output_tokens=300))
    uncached = cost(price, TokenUsage(input_tokens=10_000, output_tokens=300))

    assert cached == Decimal("0.00777")  # (100 × 3 + 9,900 × 0.3 + 300 × 15) / 1e6
    assert uncached == Decimal("0.0345")


def test_a_call_is_priced_with_the_price_in_force_at_its_time():
    launch = price_for("claude-3-5-haiku-20241022", at=datetime(2024, 11, 10, tzinfo=UTC))
    later = price_for("claude-3-5-haiku-20241022", at=datetime(2025, 6, 1, tzinfo=UTC))
    usage = TokenUsage(input_tokens=10**6, output_tokens=10**6)

    assert (cost(launch, usage), cost(later, usage)) == (Decimal(6), Decimal("4.8"))


def test_an_unpriced_model_is_a_clear_error():
    with pytest.raises(ModelNotPriced, match="claude-imaginary"):
        price_for("claude-imaginary")
    with pytest.raises(ModelNotPriced):
        price_for("claude-3-5-haiku-20241022", at=datetime(2024, 10, 1, tzinfo=UTC))


def test_usage_from_the_api_splits_cache_writes_by_ttl():
    with_breakdown = TokenUsage.from_api(
        {
            "input_tokens": 5,
            "output_tokens": 7,
            "cache_creation_input_tokens": 30,
            "cache_read_input_tokens": 11,
            "cache_creation": {"ephemeral_5m_input_tokens": 10, "ephemeral_1h_input_tokens": 20},
        }
    )
    without = TokenUsage.from_api({"input_tokens": 5, "output_tokens": 7, "cache_creation_input_tokens": 30})

    assert with_breakdown == TokenUsage(5, 7, 10, 20, 11)
    assert without == TokenUsage(5, 7, 30, 0, 0)
