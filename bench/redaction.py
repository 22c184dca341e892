"""Redaction: milliseconds per 15 KB of mixed text (target ≤ 2 ms)."""

from __future__ import annotations

import json
import os
import random
import statistics
import time

import django

PROSE = "the customer reported that the invoice was wrong and asked for a refund before friday please check"
WORDS = PROSE.split()


def sample_text(rng: random.Random, size: int = 15_000) -> str:
    """Support-ticket prose with about one personal datum every 200 characters, each value new."""
    parts: list[str] = []
    while sum(len(part) + 1 for part in parts) < size:
        roll = rng.random()
        if roll < 0.010:
            parts.append(f"user{rng.randint(1, 10**6)}@example.com")
        elif roll < 0.015:
            parts.append(f"+1 415 555 {rng.randint(1000, 9999)}")
        elif roll < 0.018:
            parts.append("4111 1111 1111 1111")
        elif roll < 0.020:
            parts.append(f"10.0.{rng.randint(0, 255)}.{rng.randint(1, 254)}")
        elif roll < 0.030:
            parts.append(f"order {rng.randint(10**5, 10**8)} of 2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}")
        else:
            parts.append(rng.choice(WORDS))
    return " ".join(parts)[:size]


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
    django.setup()
    from prompts.runtime.redact import Redaction

    rng = random.Random(7)
    texts = [sample_text(rng) for _ in range(200)]
    for text in texts[:5]:
        Redaction().redact_text(text)
    timings = []
    found = 0
    for text in texts:
        began = time.perf_counter()
        redaction = Redaction()
        redaction.redact_text(text)
        timings.append((time.perf_counter() - began) * 1000)
        found += sum(redaction.counts.values())
    print(
        json.dumps(
            {
                "benchmark": "redaction",
                "text_bytes": 15_000,
                "texts": len(texts),
                "items_found_per_text": round(found / len(texts), 1),
                "ms_p50": round(statistics.median(timings), 3),
                "ms_p95": round(statistics.quantiles(timings, n=20)[18], 3),
                "target_ms": 2,
            }
        )
    )


if __name__ == "__main__":
    main()
