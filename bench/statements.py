"""What one run asks of PostgreSQL and Redis, counted in the process that serves it.

PostgreSQL's own statistics count transactions and WAL flushes (bench/compare.py reads them), not the
statements and round trips a request makes, and pg_stat_statements is not preloaded on this machine. So
this benchmark serves calls through Django's own request handler (every middleware, DRF, the pipeline; no
HTTP server) in one process, against PostgreSQL, Redis and the sandbox, and counts for warm calls: SQL
statements, transactions (BEGIN … COMMIT, or a statement on its own in autocommit), database round trips
(every statement, BEGIN, COMMIT and SAVEPOINT is one), Redis round trips, and the time a call takes here.
It counts three calls asking the upstream the same: a run of support-summary, and the Anthropic-compatible
endpoint's prompt-bound and free-form calls (a free-form call also counts its system prompt in the
prompt-discovery inventory).

Run alone: `.venv/bin/python -m bench.statements` (creates database `tollgate_statements`, Redis db 4).
bench/compare.py runs it against its own database and prints its figures beside the others.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx2

from bench.run_endpoint import (
    ANTHROPIC_PATH,
    PG,
    ROOT,
    VARIABLES,
    anthropic_bodies,
    environment,
    free_port,
    freeform_token,
    prepare,
    wait_for,
)  # fmt: skip

DATABASE = "tollgate_statements"
REDIS = "redis://127.0.0.1:6379/4"
RUN_PATH = "/api/v1/prompts/support-summary/run"
WARM_RUNS = 20
COUNTED_RUNS = 50


def count(token: str, freeform: str) -> list[dict[str, Any]]:
    """Inside a process set up for the benchmark's database: serve warm calls and count what they ask."""
    import django

    django.setup()
    from django.conf import settings
    from django.db import connections
    from django.test import Client
    from redis.connection import Connection

    connection: Any = connections["default"]  # private hooks of the PostgreSQL backend are wrapped below
    counts: Counter[str] = Counter()
    statements: list[tuple[str, bool]] = []  # (SQL, inside an explicit transaction)
    client = Client(HTTP_HOST="127.0.0.1")

    def caller(path: str, body: dict[str, Any], headers: dict[str, str]) -> Callable[[], None]:
        payload = json.dumps(body)

        def call() -> None:
            response = client.post(path, payload, content_type="application/json", secure=True, headers=headers)
            if response.status_code != 200:
                raise RuntimeError(f"{path} failed: {response.status_code} {response.content[:300]!r}")

        return call

    run = caller(RUN_PATH, {"variables": VARIABLES}, {"Authorization": f"Bearer {token}"})
    run()
    request = httpx2.get(f"{settings.TOLLGATE_SANDBOX_URL}/_sandbox/requests").json()["requests"][-1]["body"]
    bodies = anthropic_bodies(request)
    calls = {
        "run": run,
        "anthropic prompt-bound": caller(ANTHROPIC_PATH, bodies["prompt-bound"], {"x-api-key": token}),
        "anthropic free-form": caller(ANTHROPIC_PATH, bodies["free-form"], {"x-api-key": freeform}),
    }
    for call in calls.values():
        for _ in range(WARM_RUNS):
            call()

    def counting_send(self: Connection, *args: Any, **kwargs: Any) -> None:
        counts["redis"] += 1
        send_command(self, *args, **kwargs)

    def recorder(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        statements.append((sql, connection.in_atomic_block))
        return execute(sql, params, many, context)

    # psycopg sends BEGIN and COMMIT as round trips of their own; Django opens and commits a transaction
    # through the connection, not through a cursor, so they are counted where it does.
    send_command = Connection.send_command
    set_autocommit, commit = connection._set_autocommit, connection._commit

    def counting_set_autocommit(autocommit: bool) -> None:
        counts["begin"] += not autocommit
        set_autocommit(autocommit)

    def counting_commit() -> None:
        counts["commit"] += 1
        commit()

    connection._set_autocommit, connection._commit = counting_set_autocommit, counting_commit
    Connection.send_command = counting_send  # type: ignore[assignment]
    figures = []
    try:
        with connection.execute_wrapper(recorder):
            for name, call in calls.items():
                counts.clear()
                statements.clear()
                began = time.perf_counter()
                for _ in range(COUNTED_RUNS):
                    call()
                elapsed_ms = (time.perf_counter() - began) * 1000
                figures.append(_figures(name, statements, counts, elapsed_ms))
    finally:
        Connection.send_command = send_command  # type: ignore[method-assign]
        del connection._set_autocommit, connection._commit
    return figures


def _figures(name: str, statements: list[tuple[str, bool]], counts: Counter[str], elapsed_ms: float) -> dict[str, Any]:
    n = COUNTED_RUNS
    autocommitted = sum(not inside for _, inside in statements)
    per_run = round(len(statements) / n)
    return {
        "benchmark": "run_statements",
        "call": name,
        "runs": n,
        "sql_statements_per_run": round(len(statements) / n, 2),
        "transactions_per_run": round((counts["begin"] + autocommitted) / n, 2),
        "postgres_round_trips_per_run": round((len(statements) + counts["begin"] + counts["commit"]) / n, 2),
        "redis_round_trips_per_run": round(counts["redis"] / n, 2),
        "in_process_ms_per_run": round(elapsed_ms / n, 2),
        "statements_of_one_run": [sql[:100] for sql, _ in statements[-per_run:]],
    }


def main() -> None:
    from sandbox.server import SandboxServer

    sandbox = SandboxServer(port=free_port()).start()
    try:
        env = environment(sandbox.port, DATABASE) | {"REDIS_URL": REDIS}
        token = prepare(env, DATABASE)
        wait_for(sandbox.port)
        measure(env, token, freeform_token(env))
    finally:
        sandbox.stop()


def measure(env: dict[str, str], token: str, freeform: str) -> list[dict[str, Any]]:
    """Count in a process of its own (its settings are the benchmark's); prints and returns the figures of
    a run, then of the compatible endpoint's prompt-bound and free-form calls (`freeform`: a token of a
    client allowed them)."""
    code = f"import json, bench.statements as s; print(json.dumps(s.count({token!r}, {freeform!r})))"
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    output = run.stdout.strip().splitlines()[-1]
    figures: list[dict[str, Any]] = json.loads(output)
    for call in figures:
        print(json.dumps(call), flush=True)
    return figures


if __name__ == "__main__":
    os.environ.setdefault("BENCH_POSTGRES", PG)
    main()
