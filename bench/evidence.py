"""A `usage_ledger` evidence package of 1,000,000 ledger rows on PostgreSQL: time and peak memory of
`manage.py export_evidence`, then of `verify_export`. Prints one JSON line (targets: ≤ 60 s, ≤ 250 MB).

Needs the machine's PostgreSQL (database `tollgate_bench` is created afresh) and GNU time (`/usr/bin/time`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.run_endpoint import PG, ROOT, environment, free_port

ROWS = 1_000_000  # as in FILL
FILL = """
INSERT INTO usage_usagerecord (
  request_id, created_at, environment, api_client_id, api_client_name, provider_key_id, provider_key_last_four,
  prompt_id, prompt_slug, prompt_version, endpoint, requested_model, model, routing_rule, input_tokens,
  output_tokens, cache_write_5m_tokens, cache_write_1h_tokens, cache_read_tokens, cost_usd,
  default_model_cost_usd, latency_total_ms, latency_upstream_ms, time_to_first_token_ms, outcome, error_class,
  retries, upstream_request_id, stop_reason, redactions, checks, feature, user_tier, end_user)
SELECT md5(n::text), now() - (n % 86400) * interval '1 second', 'production', 1, 'support-app', 1, '0001',
  1, 'support-summary', 1, 'run', 'claude-sonnet-4-6', 'claude-haiku-4-5', 'input<=500', 100 + n % 900,
  50 + n % 400, 0, 0, n % 200, (100 + n % 900) * 0.000001 + (50 + n % 400) * 0.000005,
  (100 + n % 900) * 0.000003 + (50 + n % 400) * 0.000015, 200 + n % 50, 190 + n % 50, NULL,
  CASE WHEN n % 50 = 0 THEN 'overloaded' ELSE 'ok' END, '', n % 3, 'req_' || md5(n::text), 'end_turn',
  '{"EMAIL": 1}'::jsonb, '{"passed": true, "failed": []}'::jsonb, 'support', 'pro', ''
FROM generate_series(1, 1000000) AS n
"""


def _timed(command: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Seconds and peak resident memory (MB, from GNU time) of one command, and its output."""
    began = time.perf_counter()
    done = subprocess.run(
        ["/usr/bin/time", "-f", "peak_kb=%M", *command], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    )
    elapsed = time.perf_counter() - began
    peak_kb = int(done.stderr.rsplit("peak_kb=", 1)[1].split()[0])
    return elapsed, peak_kb / 1024, done.stdout


def main() -> None:
    env = environment(free_port())
    subprocess.run(["psql", PG + "/postgres", "-qc", "DROP DATABASE IF EXISTS tollgate_bench"], check=True)
    subprocess.run(["psql", PG + "/postgres", "-qc", "CREATE DATABASE tollgate_bench"], check=True)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
    began = time.perf_counter()
    subprocess.run(["psql", f"{PG}/tollgate_bench", "-qc", FILL], check=True)
    subprocess.run(["psql", f"{PG}/tollgate_bench", "-qc", "VACUUM ANALYZE usage_usagerecord"], check=True)
    filled = time.perf_counter() - began
    today = time.strftime("%Y-%m-%d", time.gmtime())
    yesterday = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 86400))
    with tempfile.TemporaryDirectory() as directory:
        package = Path(directory) / "ledger.zip"
        manage = [sys.executable, "manage.py"]
        export_s, export_mb, out = _timed(
            [*manage, "export_evidence", "--type", "usage_ledger", "--from", yesterday, "--to", today,
             "--out", str(package), "--as", "bench"], env,
        )  # fmt: skip
        # The package was made just now by this run: its embedded key is the one expected.
        verify_s, verify_mb, _ = _timed([*manage, "verify_export", str(package), "--trust-embedded-key"], env)
        figures: dict[str, Any] = {
            "benchmark": "evidence_usage_ledger_export",
            "ledger_rows": ROWS,
            "exported": out.strip(),
            "fill_s": round(filled, 1),
            "export_s": round(export_s, 1),
            "export_peak_mb": round(export_mb, 1),
            "package_mb": round(os.path.getsize(package) / 1e6, 1),
            "verify_s": round(verify_s, 1),
            "verify_peak_mb": round(verify_mb, 1),
            "target": {"export_s": 60, "export_peak_mb": 250},
        }
    print(json.dumps(figures), flush=True)


if __name__ == "__main__":
    main()
