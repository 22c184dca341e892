"""Series of the ledger for GET /metrics, from the hourly roll-ups (config.metrics)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from django.db.models import Sum

from core.metrics import Family
from usage.choices import UPSTREAM_ERRORS, Outcome
from usage.models import LATENCY_BUCKET_FIELDS, LATENCY_BUCKETS_MS, TTFT_BUCKET_FIELDS, UsageRollup

# Calls Anthropic answered with an error, the refused ones (4xx) included.
ERROR_CLASSES = (*UPSTREAM_ERRORS, Outcome.CLIENT_ERROR)


def _histogram(name: str, help_text: str, prefix: str, fields: tuple[str, ...]) -> Family:
    family = Family(name, help_text, "histogram")
    rows = (
        UsageRollup.objects.values("environment", "prompt_slug", "model")
        .annotate(total=Sum(f"{prefix}_sum_ms"), **{field: Sum(field) for field in fields})
        .order_by("environment", "prompt_slug", "model")
    )
    for row in rows:
        labels = {"environment": row["environment"], "prompt": row["prompt_slug"], "model": row["model"]}
        running = 0
        for bound, field in zip((*LATENCY_BUCKETS_MS, "+Inf"), fields, strict=True):
            running += row[field] or 0
            family.add({**labels, "le": bound}, running, "_bucket")
        family.add(labels, row["total"] or 0, "_sum")
        family.add(labels, running, "_count")
    return family


def ledger_families() -> list[Family]:
    runs = Family("tollgate_runs_total", "Upstream calls recorded in the ledger.", "counter")
    tokens = Family("tollgate_tokens_total", "Tokens by kind.", "counter")
    cost = Family("tollgate_cost_usd_total", "Cost charged, USD.", "counter")
    errors = Family("tollgate_upstream_errors_total", "Failed upstream calls by class.", "counter")
    by_labels = (
        UsageRollup.objects.values("environment", "prompt_slug", "model", "endpoint", "outcome")
        .annotate(
            calls=Sum("calls"),
            input=Sum("input_tokens"),
            output=Sum("output_tokens"),
            cache_write=Sum("cache_write_tokens"),
            cache_read=Sum("cache_read_tokens"),
            cost=Sum("cost_usd"),
        )
        .order_by("environment", "prompt_slug", "model", "endpoint", "outcome")
    )
    cost_by: dict[tuple[str, str, str], Any] = defaultdict(int)
    tokens_by: dict[tuple[str, str, str, str], int] = defaultdict(int)
    errors_by: dict[tuple[str, str], int] = defaultdict(int)
    for row in by_labels:
        base = (row["environment"], row["prompt_slug"], row["model"])
        runs.add({"environment": base[0], "prompt": base[1], "model": base[2], "endpoint": row["endpoint"],
                  "outcome": row["outcome"]}, row["calls"])  # fmt: skip
        cost_by[base] += row["cost"] or 0
        for kind in ("input", "output", "cache_write", "cache_read"):
            tokens_by[(*base, kind)] += row[kind] or 0
        if row["outcome"] in ERROR_CLASSES:
            errors_by[(row["environment"], row["outcome"])] += row["calls"]
    for (environment, prompt, model), value in sorted(cost_by.items()):
        cost.add({"environment": environment, "prompt": prompt, "model": model}, value)
    for (environment, prompt, model, kind), value in sorted(tokens_by.items()):
        tokens.add({"environment": environment, "prompt": prompt, "model": model, "kind": kind}, value)
    for (environment, error_class), value in sorted(errors_by.items()):
        errors.add({"environment": environment, "class": error_class}, value)
    return [
        runs,
        tokens,
        cost,
        errors,
        _histogram("tollgate_latency_ms", "Total latency of runs, milliseconds.", "latency", LATENCY_BUCKET_FIELDS),
        _histogram(
            "tollgate_time_to_first_token_ms", "Time to first token of streams, ms.", "ttft", TTFT_BUCKET_FIELDS
        ),
    ]
