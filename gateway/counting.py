"""Token counts at Anthropic (`/v1/messages/count_tokens`): free of charge, still one ledger row each,
endpoint `count` (every upstream call has one). The Anthropic-compatible endpoint counts a caller's body
with it; evaluations count a version's system prompt for the cost of a change."""

from __future__ import annotations

import time
from typing import Any

from gateway.upstream import UPSTREAM_FAILURES, classify, message_count_tokens
from keys.models import ProviderKey
from usage.choices import Outcome
from usage.settlement import call_settle

# The fields of a Messages API body that the counting endpoint takes.
COUNTED_FIELDS = ("model", "messages", "system", "tools", "tool_choice")


def tokens_count_recorded(*, key: ProviderKey, params: dict[str, Any], record: dict[str, Any],
                          caller_wrote_body: bool) -> int:  # fmt: skip
    """The input tokens of `params` (a Messages API body; fields the endpoint does not take are left out),
    counted on `key`, with the call's ledger row: `record` (its ids and names, `ledger_base`) completed by
    the outcome and latency. An upstream failure is recorded, then raised as the API's error."""
    params = {name: value for name, value in params.items() if name in COUNTED_FIELDS}
    began = time.perf_counter()
    try:
        tokens = message_count_tokens(key, params)
    except UPSTREAM_FAILURES as exc:
        failure = classify(exc)
        call_settle(record={**record, "outcome": failure.outcome, "error_class": type(exc).__name__,
                            "latency_upstream_ms": round((time.perf_counter() - began) * 1000)})  # fmt: skip
        raise failure.error(caller_wrote_body=caller_wrote_body) from None
    elapsed = round((time.perf_counter() - began) * 1000)
    call_settle(record={**record, "outcome": Outcome.OK, "latency_upstream_ms": elapsed, "latency_total_ms": elapsed})
    return tokens
