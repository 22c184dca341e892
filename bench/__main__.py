"""Run every benchmark in turn and print its figures."""

from __future__ import annotations

from bench import sandbox_upstream

BENCHMARKS = [sandbox_upstream.main]


if __name__ == "__main__":
    for benchmark in BENCHMARKS:
        benchmark()
