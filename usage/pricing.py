"""The cost of a response, exactly, in Decimal (ANTHROPIC_API.md, "Cost of one response").

cost = ( input × P_in + w5m × P_w5m + w1h × P_w1h + cache_read × P_read ) × long-context input multiplier
       + output × P_out × long-context output multiplier,  / 1,000,000,  × batch multiplier if batched.

Long context applies to every token when the whole prompt (input + cache writes + cache reads) exceeds
the model's threshold. Without a 5m/1h breakdown, all cache writes count as 5-minute writes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any

from usage.models import Price

MILLION = Decimal(1_000_000)


@dataclass(frozen=True)
class TokenUsage:
    """Token counts of one response, by pricing category."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_write_5m_tokens: int = 0
    cache_write_1h_tokens: int = 0
    cache_read_tokens: int = 0

    def ledger_fields(self) -> dict[str, int]:
        """The counts as the ledger's token columns (they share these names)."""
        return asdict(self)

    @property
    def prompt_tokens(self) -> int:
        return self.input_tokens + self.cache_write_5m_tokens + self.cache_write_1h_tokens + self.cache_read_tokens

    @classmethod
    def from_api(cls, usage: Any) -> TokenUsage:
        """From the `usage` of an Anthropic response (an SDK object or its dict)."""

        def get(source: Any, name: str) -> Any:
            return source.get(name) if isinstance(source, dict) else getattr(source, name, None)

        creation = get(usage, "cache_creation")
        written = get(usage, "cache_creation_input_tokens") or 0
        if creation is not None:
            w5m = get(creation, "ephemeral_5m_input_tokens") or 0
            w1h = get(creation, "ephemeral_1h_input_tokens") or 0
        else:
            w5m, w1h = written, 0
        return cls(
            input_tokens=get(usage, "input_tokens") or 0,
            output_tokens=get(usage, "output_tokens") or 0,
            cache_write_5m_tokens=w5m,
            cache_write_1h_tokens=w1h,
            cache_read_tokens=get(usage, "cache_read_input_tokens") or 0,
        )


def cost(price: Price, usage: TokenUsage, *, batch: bool = False) -> Decimal:
    long_context = price.long_context_threshold is not None and usage.prompt_tokens > price.long_context_threshold
    input_multiplier = price.long_context_input_multiplier if long_context else Decimal(1)
    output_multiplier = price.long_context_output_multiplier if long_context else Decimal(1)
    prompt_side = (
        usage.input_tokens * price.input
        + usage.cache_write_5m_tokens * price.cache_write_5m
        + usage.cache_write_1h_tokens * price.cache_write_1h
        + usage.cache_read_tokens * price.cache_read
    ) * input_multiplier
    total = (prompt_side + usage.output_tokens * price.output * output_multiplier) / MILLION
    return total * price.batch_multiplier if batch else total
