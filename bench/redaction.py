"""Redaction: milliseconds per 15 KB of mixed text (target ≤ 2 ms)."""

from __future__ import annotations

import json
import os
import random
import statistics
import time

import django
from stdnum import iban, luhn

PROSE = "the customer reported that the invoice was wrong and asked for a refund before friday please check"
# One accented word in seventeen: prose outside ASCII goes through the folding step too.
WORDS = [*PROSE.split(), "déjà"]
FULL_WIDTH_DIGITS = str.maketrans("0123456789", "０１２３４５６７８９")


def _card(rng: random.Random) -> str:
    body = "4" + "".join(rng.choice("0123456789") for _ in range(14))
    return body + luhn.calc_check_digit(body)


def _iban(rng: random.Random) -> str:
    bban = "WEST" + "".join(rng.choice("0123456789") for _ in range(14))
    number = f"GB{iban.calc_check_digits('GB00' + bban)}{bban}"
    return " ".join(number[i : i + 4] for i in range(0, len(number), 4)).lower()


def sample_text(rng: random.Random, size: int = 15_000) -> str:
    """Support-ticket prose with about one personal datum every 200 characters, each value new, some
    written as the detectors must also catch: dotted cards, lower-case IBANs, SSNs without dashes,
    Unicode domains, no-break spaces and full-width digits."""
    parts: list[str] = []
    while sum(len(part) + 1 for part in parts) < size:
        roll = rng.random()
        if roll < 0.008:
            parts.append(f"user{rng.randint(1, 10**6)}@example.com")
        elif roll < 0.010:
            parts.append(f"jöhn{rng.randint(1, 10**6)}@bücher.de")
        elif roll < 0.014:
            parts.append(f"+1 415 555 {rng.randint(1000, 9999)}")
        elif roll < 0.015:
            parts.append("+44\u00a020\u00a07946\u00a0" + f"0{rng.randint(100, 999)}".translate(FULL_WIDTH_DIGITS))
        elif roll < 0.017:
            parts.append("4111 1111 1111 1111")
        elif roll < 0.018:
            card = _card(rng)
            parts.append(".".join(card[i : i + 4] for i in range(0, 16, 4)))
        elif roll < 0.019:
            parts.append(f"10.0.{rng.randint(0, 255)}.{rng.randint(1, 254)}")
        elif roll < 0.020:
            parts.append(_iban(rng))
        elif roll < 0.021:
            parts.append(f"219{rng.randint(10, 99)}{rng.randint(1000, 9999)}")
        elif roll < 0.031:
            parts.append(f"order {rng.randint(10**5, 10**8)} of 2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}")
        else:
            parts.append(rng.choice(WORDS))
    return " ".join(parts)[:size]


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
    django.setup()
    from gateway.redaction.engine import Redaction

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
