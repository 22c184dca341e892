"""The usage dashboard's month view over 10,000,000 ledger rows on PostgreSQL: the rows are made by SQL,
their hourly roll-ups by one aggregate (the same sums `usage.rollups` keeps row by row), then the page is
rendered through Django. Prints one JSON line (target: ≤ 300 ms).

Needs the machine's PostgreSQL (database `tollgate_bench` is created afresh).
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from typing import Any

from bench.run_endpoint import PG, ROOT, environment, free_port

ROWS = 10_000_000  # as in FILL
# A month of traffic: 10 prompts (each with its model, client and feature), 3 endpoints, 3 tiers, 2 % errors.
FILL = """
INSERT INTO usage_usagerecord (
  request_id, created_at, environment, api_client_id, api_client_name, provider_key_id, provider_key_last_four,
  prompt_id, prompt_slug, prompt_version, endpoint, requested_model, model, routing_rule, input_tokens,
  output_tokens, cache_write_5m_tokens, cache_write_1h_tokens, cache_read_tokens, cost_usd,
  default_model_cost_usd, latency_total_ms, latency_upstream_ms, time_to_first_token_ms, outcome, error_class,
  retries, upstream_request_id, stop_reason, redactions, checks, feature, user_tier, end_user)
SELECT 'r', date_trunc('month', now()) + (n % 2419200) * interval '1 second', 'production', n % 10,
  'client-' || (n % 10), 1, '0001', n % 10, 'prompt-' || (n % 10), 1, (ARRAY['run','stream','job'])[n % 3 + 1],
  'claude-sonnet-4-6', (ARRAY['claude-haiku-4-5','claude-sonnet-4-6'])[n % 2 + 1], '', 100 + n % 900,
  50 + n % 400, 0, 0, n % 200, 0.001, 0.003, 100 + n % 2000, 90 + n % 2000,
  CASE WHEN n % 3 = 1 THEN 50 + n % 500 END, CASE WHEN n % 50 = 0 THEN 'overloaded' ELSE 'ok' END, '', 0, '',
  'end_turn', '{}'::jsonb, '{}'::jsonb, 'feature-' || (n % 10), (ARRAY['free','pro','team'])[n % 3 + 1], ''
FROM generate_series(1, 10000000) AS n
"""
BUCKETS = (50, 100, 200, 300, 500, 750, 1000, 2000, 5000, 10000, 30000)  # usage.models.LATENCY_BUCKETS_MS


def _histogram(column: str) -> str:
    """The bucket counts of `column`, as the roll-up's bucket columns."""
    parts = [f"count(*) FILTER (WHERE {column} <= {BUCKETS[0]})"]
    parts += [
        f"count(*) FILTER (WHERE {column} > {low} AND {column} <= {high})" for low, high in itertools.pairwise(BUCKETS)
    ]
    parts.append(f"count(*) FILTER (WHERE {column} > {BUCKETS[-1]})")
    return ", ".join(parts)


def _columns(prefix: str) -> str:
    return ", ".join(f"{prefix}_b{index}" for index in range(len(BUCKETS) + 1))


ROLLUP = f"""
INSERT INTO usage_usagerollup (key, hour, environment, prompt_slug, prompt_version, model, api_client_id,
  api_client_name, endpoint, outcome, feature, user_tier, calls, input_tokens, output_tokens, cache_write_tokens,
  cache_read_tokens, cost_usd, default_model_cost_usd, cache_savings_usd, checks_run, checks_passed,
  latency_count, latency_sum_ms,
  {_columns("latency")}, ttft_count, ttft_sum_ms, {_columns("ttft")})
SELECT md5(concat_ws('|', date_trunc('hour', created_at), environment, prompt_slug, prompt_version, model,
    api_client_id, endpoint, outcome, feature, user_tier)),
  date_trunc('hour', created_at), environment, prompt_slug, prompt_version, model, api_client_id,
  api_client_name, endpoint, outcome, feature, user_tier, count(*), sum(input_tokens), sum(output_tokens),
  sum(cache_write_5m_tokens + cache_write_1h_tokens), sum(cache_read_tokens), sum(cost_usd),
  sum(default_model_cost_usd), 0, 0, 0, count(latency_total_ms), coalesce(sum(latency_total_ms), 0),
  {_histogram("latency_total_ms")}, count(time_to_first_token_ms), coalesce(sum(time_to_first_token_ms), 0),
  {_histogram("time_to_first_token_ms")}
FROM usage_usagerecord
GROUP BY 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12
"""  # noqa: S608  (constants only)

RENDER = """
import statistics, time
from django.contrib.auth.models import User
from django.test import Client
from core.context import access_change
with access_change(actor_repr="bench"):
    user = User.objects.filter(username="bench").first() or User.objects.create_superuser("bench", "b@example.com", "x")
client = Client()
client.force_login(user)
client.get("/admin/usage/usagerecord/dashboard/")
timings = []
for _ in range(7):
    began = time.perf_counter()
    response = client.get("/admin/usage/usagerecord/dashboard/")
    timings.append((time.perf_counter() - began) * 1000)
    assert response.status_code == 200
print(round(statistics.median(timings), 1), round(max(timings), 1))
"""


def _sql(statement: str) -> None:
    subprocess.run(["psql", f"{PG}/tollgate_bench", "-qc", statement], check=True)


def _count(sql: str) -> int:
    out = subprocess.run(["psql", f"{PG}/tollgate_bench", "-tAc", sql], check=True, capture_output=True, text=True)
    return int(out.stdout.strip())


def main() -> None:
    env = {**environment(free_port()), "DJANGO_ALLOWED_HOSTS": "testserver"}
    subprocess.run(["psql", PG + "/postgres", "-qc", "DROP DATABASE IF EXISTS tollgate_bench"], check=True)
    subprocess.run(["psql", PG + "/postgres", "-qc", "CREATE DATABASE tollgate_bench"], check=True)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
    began = time.perf_counter()
    _sql(FILL)
    _sql(ROLLUP)
    _sql("VACUUM ANALYZE usage_usagerollup")
    filled = time.perf_counter() - began
    # Rendered with the test settings: production settings want `collectstatic` for the admin's assets.
    render_env = {**env, "DJANGO_SETTINGS_MODULE": "config.settings.test"}
    out = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", RENDER], cwd=ROOT, env=render_env, check=True,
        capture_output=True, text=True,
    ).stdout.split()  # fmt: skip
    figures: dict[str, Any] = {
        "benchmark": "dashboard_month_view",
        "ledger_rows": _count("SELECT count(*) FROM usage_usagerecord"),
        "rollup_rows": _count("SELECT count(*) FROM usage_usagerollup"),
        "fill_s": round(filled, 1),
        "render_ms_median": float(out[-2]),
        "render_ms_max": float(out[-1]),
        "target_ms": 300,
    }
    print(json.dumps(figures), flush=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
