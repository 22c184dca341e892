"""Run every benchmark in turn; each prints its figures (the run endpoint's as JSON lines)."""

from __future__ import annotations

from bench import compare, dashboard, evidence, jobs, redaction, run_endpoint, sandbox_upstream

BENCHMARKS = [
    sandbox_upstream.main,
    redaction.main,
    run_endpoint.main,
    compare.main,
    jobs.main,
    evidence.main,
    dashboard.main,
]


if __name__ == "__main__":
    for benchmark in BENCHMARKS:
        benchmark()
