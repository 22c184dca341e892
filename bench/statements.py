"""What one run asks of PostgreSQL and Redis, counted in the process that serves it.

PostgreSQL's own statistics count transactions and WAL flushes (bench/compare.py reads them), not the
statements and round trips a request makes, and pg_stat_statements is not preloaded on this machine. So
this benchmark serves runs through Django's own request handler (every middleware, DRF, the pipeline; no
HTTP server) in one process, against PostgreSQL, Redis and the sandbox, and counts for warm runs: SQL
statements, transactions (BEGIN … COMMIT, or a statement on its own in autocommit), database round trips
(every statement, BEGIN, COMMIT and SAVEPOINT is one), Redis round trips, and the time a run takes here.

Run alone: `.venv/bin/python -m bench.statements` (creates database `tollgate_statements`, Redis db 4).
bench/compare.py runs it against its own database and prints its figures beside the others.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

from bench.run_endpoint import PG, ROOT, VARIABLES, environment, free_port, prepare, wait_for

DATABASE = "tollgate_statements"
REDIS = "redis://127.0.0.1:6379/4"
RUN_PATH = "/api/v1/prompts/support-summary/run"
WARM_RUNS = 20
COUNTED_RUNS = 50


def count(token: str) -> dict[str, Any]:
    """Inside a process set up for the benchmark's database: serve warm runs and count what they ask."""
    import django

    django.setup()
    from django.db import connections
    from django.test import Client
    from redis.connection import Connection

    connection: Any = connections["default"]  # private hooks of the PostgreSQL backend are wrapped below
    redis_calls = 0
    send_command = Connection.send_command

    def counting_send(self: Connection, *args: Any, **kwargs: Any) -> None:
        nonlocal redis_calls
        redis_calls += 1
        send_command(self, *args, **kwargs)

    statements: list[tuple[str, bool]] = []  # (SQL, inside an explicit transaction)

    def recorder(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        statements.append((sql, connection.in_atomic_block))
        return execute(sql, params, many, context)

    client = Client(HTTP_HOST="127.0.0.1", HTTP_AUTHORIZATION=f"Bearer {token}")
    body = json.dumps({"variables": VARIABLES})

    def run() -> None:
        response = client.post(RUN_PATH, body, content_type="application/json", secure=True)
        if response.status_code != 200:
            raise RuntimeError(f"the run failed: {response.status_code} {response.content[:300]!r}")

    for _ in range(WARM_RUNS):
        run()
    # psycopg sends BEGIN and COMMIT as round trips of their own; Django opens and commits a transaction
    # through the connection, not through a cursor, so they are counted where it does.
    begins = commits = 0
    set_autocommit, commit = connection._set_autocommit, connection._commit

    def counting_set_autocommit(autocommit: bool) -> None:
        nonlocal begins
        begins += not autocommit
        set_autocommit(autocommit)

    def counting_commit() -> None:
        nonlocal commits
        commits += 1
        commit()

    connection._set_autocommit, connection._commit = counting_set_autocommit, counting_commit
    Connection.send_command = counting_send  # type: ignore[assignment]
    began = time.perf_counter()
    try:
        with connection.execute_wrapper(recorder):
            for _ in range(COUNTED_RUNS):
                run()
    finally:
        Connection.send_command = send_command  # type: ignore[method-assign]
        del connection._set_autocommit, connection._commit
    elapsed_ms = (time.perf_counter() - began) * 1000
    n = COUNTED_RUNS
    autocommitted = sum(not inside for _, inside in statements)
    per_run = round(len(statements) / n)
    return {
        "benchmark": "run_statements",
        "runs": n,
        "sql_statements_per_run": round(len(statements) / n, 2),
        "transactions_per_run": round((begins + autocommitted) / n, 2),
        "postgres_round_trips_per_run": round((len(statements) + begins + commits) / n, 2),
        "redis_round_trips_per_run": round(redis_calls / n, 2),
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
        measure(env, token)
    finally:
        sandbox.stop()


def measure(env: dict[str, str], token: str) -> dict[str, Any]:
    """Count in a process of its own (its settings are the benchmark's); prints and returns the figures."""
    output = (
        subprocess.run(
            [sys.executable, "-c", f"import json, bench.statements as s; print(json.dumps(s.count({token!r})))"],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    figures: dict[str, Any] = json.loads(output)
    print(json.dumps(figures), flush=True)
    return figures


if __name__ == "__main__":
    os.environ.setdefault("BENCH_POSTGRES", PG)
    main()
