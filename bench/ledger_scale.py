"""The ledger at scale on PostgreSQL (docs/capacity.md): a ledger partitioned by month filled with `--rows`
rows (default 50,000,000) over `--months` months (default 24) ending with the current one, and its hourly
roll-ups; then, at that size:

- the ledger insert of one run through the real path (`usage.settlement.call_settle` settling a
  reservation: one statement writing the row, its roll-up and the counters), against the same on the empty
  ledger before the fill (ratio);
- the month dashboard (`usage.dashboard.dashboard`), which reads roll-ups only;
- a one-month `usage_ledger` evidence package (`manage.py export_evidence`): time and size;
- the archive of the oldest month (`manage.py ledger_archive`: export, verify, detach).

It prints one JSON line with the figures, rows and bytes (`pg_total_relation_size` of every partition and
its indexes, per row). Not part of `make bench` (the default size takes hours and ~50 GB of disk): run
`.venv/bin/python -m bench.ledger_scale --rows N`. The database (`BENCH_LEDGER_DATABASE`, default
`tollgate_ledger_scale`) is created afresh and dropped at the end unless `--keep`.

The fill is SQL (`INSERT … SELECT generate_series`, one statement a month) straight into the partitioned
table, with the call-id trigger disabled while it runs: every generated call id is distinct by
construction, and the trigger's cost is what the settlement figures measure.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from bench.dashboard import ROLLUP
from bench.run_endpoint import PG, ROOT, environment, free_port

DATABASE = os.environ.get("BENCH_LEDGER_DATABASE", "tollgate_ledger_scale")
# One month's rows: 10 prompts (each its model, client and feature), 3 endpoints, 3 tiers, 2 % errors, a
# call id each (as runs have), spread evenly over the month.
FILL = """
INSERT INTO usage_usagerecord (
  request_id, created_at, environment, api_client_id, api_client_name, provider_key_id, provider_key_last_four,
  prompt_id, prompt_slug, prompt_version, endpoint, requested_model, model, routing_rule, input_tokens,
  output_tokens, cache_write_5m_tokens, cache_write_1h_tokens, cache_read_tokens, cost_usd,
  default_model_cost_usd, price_id, latency_total_ms, latency_upstream_ms, time_to_first_token_ms, outcome,
  error_class, retries, upstream_request_id, stop_reason, redactions, checks, feature, user_tier, end_user,
  call_id)
SELECT md5(n::text), %(start)s::timestamptz + (n - %(first)s) * (%(span)s::interval / %(count)s), 'production',
  n %% 10, 'client-' || (n %% 10), 1, '0001', n %% 10, 'prompt-' || (n %% 10), 1,
  (ARRAY['run','stream','job'])[n %% 3 + 1], 'claude-sonnet-4-6',
  (ARRAY['claude-haiku-4-5','claude-sonnet-4-6'])[n %% 2 + 1], '', 100 + n %% 900, 50 + n %% 400, 0, 0, n %% 200,
  (100 + n %% 900) * 0.000001 + (50 + n %% 400) * 0.000005, (100 + n %% 900) * 0.000003 + (50 + n %% 400) * 0.000015,
  NULL, 200 + n %% 1800, 190 + n %% 1800, CASE WHEN n %% 3 = 1 THEN 50 + n %% 500 END,
  CASE WHEN n %% 50 = 0 THEN 'overloaded' ELSE 'ok' END, CASE WHEN n %% 50 = 0 THEN 'OverloadedError' ELSE '' END,
  n %% 3, 'msg_' || md5(n::text), 'end_turn', '{"EMAIL": 1}'::jsonb, '{"passed": true, "failed": []}'::jsonb,
  'feature-' || (n %% 10), (ARRAY['free','pro','team'])[n %% 3 + 1], '', 'run_' || md5(n::text)
FROM generate_series(%(first)s, %(last)s) AS n
"""

SETTLE = """
import json, statistics, time
from decimal import Decimal
from usage.services import Cap
from usage.settlement import call_settle, spend_reserve

cap = Cap(scope="provider_key", scope_id=1, period="month", limit_usd=Decimal(10**12), label="bench")
tag, count = "__TAG__", __COUNT__
row = {"environment": "production", "endpoint": "run", "requested_model": "claude-sonnet-4-6",
       "model": "claude-haiku-4-5", "outcome": "ok", "api_client_id": 1, "api_client_name": "client-1",
       "prompt_slug": "prompt-1", "prompt_version": 1, "input_tokens": 500, "output_tokens": 200,
       "latency_total_ms": 400, "feature": "feature-1", "user_tier": "pro"}
timings = []
for index in range(count):
    call = f"bench_{tag}_{index}"
    reservation = spend_reserve(request_id=call, caps=[cap], amount=Decimal("0.01"),
                                ledger={**row, "request_id": call, "call_id": call})
    began = time.perf_counter()
    done = call_settle(record={**row, "request_id": call, "call_id": call, "cost_usd": Decimal("0.0015")},
                       reservation=reservation, spent=Decimal("0.0015"))
    timings.append((time.perf_counter() - began) * 1000)
    assert done.settled
timings.sort()
print(json.dumps({"median_ms": round(statistics.median(timings), 3),
                  "p95_ms": round(timings[int(len(timings) * 0.95)], 3)}))
"""

DASHBOARD = """
import json, statistics, time
from usage.dashboard import Filters, dashboard
dashboard(Filters.this_month())
timings = []
for _ in range(7):
    began = time.perf_counter()
    dashboard(Filters.this_month())
    timings.append((time.perf_counter() - began) * 1000)
print(json.dumps({"median_ms": round(statistics.median(timings), 1), "max_ms": round(max(timings), 1)}))
"""


def _months(count: int) -> list[date]:
    today = datetime.now(tz=UTC).date()
    index = today.year * 12 + today.month - 1
    return [date((index - back) // 12, (index - back) % 12 + 1, 1) for back in range(count - 1, -1, -1)]


def _next(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


def _psql(sql: str, *, quiet: bool = True) -> str:
    flags = "-qc" if quiet else "-tAc"
    return subprocess.run(
        ["psql", "-v", "ON_ERROR_STOP=1", f"{PG}/{DATABASE}", flags, sql], check=True, capture_output=True, text=True
    ).stdout.strip()


def _django(script: str, env: dict[str, str]) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", script],
        cwd=ROOT, env=env, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    return dict(json.loads(out.strip().splitlines()[-1]))


def _settle(env: dict[str, str], tag: str, count: int) -> dict[str, Any]:
    return _django(SETTLE.replace("__TAG__", tag).replace("__COUNT__", str(count)), env)


def _timed(command: list[str], env: dict[str, str]) -> float:
    began = time.perf_counter()
    subprocess.run(command, cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    return time.perf_counter() - began


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ledger_scale", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=50_000_000)
    parser.add_argument("--months", type=int, default=24)
    parser.add_argument("--settlements", type=int, default=500, help="runs settled on each ledger, timed")
    parser.add_argument("--keep", action="store_true", help="keep the database")
    options = parser.parse_args(argv)
    env = {**environment(free_port(), DATABASE), "TOLLGATE_LEDGER_RETENTION_MONTHS": "0"}
    subprocess.run(["psql", PG + "/postgres", "-qc", f"DROP DATABASE IF EXISTS {DATABASE}"], check=True)
    subprocess.run(["psql", PG + "/postgres", "-qc", f"CREATE DATABASE {DATABASE}"], check=True)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
    months = _months(options.months)
    for month in months:
        _psql(f"SELECT usage_ledger_partition_create('{month}')")
    empty = _settle(env, "empty", options.settlements)

    began = time.perf_counter()
    _psql("ALTER TABLE usage_usagerecord DISABLE TRIGGER usage_usagerecord_call_once")
    per_month = options.rows // len(months)
    for number, month in enumerate(months):
        first = number * per_month + 1
        values = {"start": f"'{month} 00:00:00+00'", "span": f"'{(_next(month) - month).days} days'",
                  "count": per_month, "first": first, "last": first + per_month - 1}  # fmt: skip
        _psql(FILL % values)
        print(f"filled {month:%Y-%m} ({per_month:,} rows) at {time.perf_counter() - began:.0f} s", file=sys.stderr)
    _psql("ALTER TABLE usage_usagerecord ENABLE TRIGGER usage_usagerecord_call_once")
    # The settled runs have their roll-ups already: only the filled rows are summed.
    _psql(ROLLUP.replace("FROM usage_usagerecord\n", "FROM usage_usagerecord WHERE call_id LIKE 'run\\_%'\n"))
    _psql("ANALYZE usage_usagerecord; ANALYZE usage_usagerollup")
    filled = time.perf_counter() - began
    rows = int(_psql("SELECT count(*) FROM usage_usagerecord", quiet=False))
    ledger_bytes = int(
        _psql(
            "SELECT sum(pg_total_relation_size(relid)) FROM pg_partition_tree('usage_usagerecord') WHERE isleaf",
            quiet=False,
        )
    )
    full = _settle(env, "full", options.settlements)
    shown = _django(DASHBOARD, env)

    export_month = months[-2] if len(months) > 1 else months[-1]
    with tempfile.TemporaryDirectory() as directory:
        package = Path(directory) / "month.zip"
        last_day = (_next(export_month) - export_month).days
        export_s = _timed(
            [sys.executable, "manage.py", "export_evidence", "--type", "usage_ledger", "--from", str(export_month),
             "--to", str(export_month.replace(day=last_day)), "--out", str(package)],
            env,
        )  # fmt: skip
        package_bytes = package.stat().st_size
        archive_s = _timed(
            [sys.executable, "manage.py", "ledger_archive", "--month", f"{months[0]:%Y-%m}", "--out", directory],
            env,
        )
    figures = {
        "benchmark": "ledger_scale",
        "ledger_rows": rows,
        "months": len(months),
        "ledger_bytes": ledger_bytes,
        "bytes_per_row": round(ledger_bytes / rows) if rows else None,
        "rollup_rows": int(_psql("SELECT count(*) FROM usage_usagerollup", quiet=False)),
        "fill_s": round(filled, 1),
        "settle_empty_ms": empty,
        "settle_full_ms": full,
        "settle_ratio_median": round(full["median_ms"] / empty["median_ms"], 2),
        "dashboard_month_ms": shown,
        "export_month_rows": per_month,
        "export_month_s": round(export_s, 1),
        "export_month_bytes": package_bytes,
        "archive_month_s": round(archive_s, 1),
    }
    print(json.dumps(figures), flush=True)
    if not options.keep:
        subprocess.run(["psql", PG + "/postgres", "-qc", f"DROP DATABASE IF EXISTS {DATABASE}"], check=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
