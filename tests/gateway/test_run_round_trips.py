"""What a settled run costs PostgreSQL: statements, transactions and WAL flushes, on the ORM path and on the
one-statement path (usage.ledger_sql). Prints the figures (`-s`) and holds the one-statement path to them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection

from tests.gateway.test_run_api import run
from usage import settlement
from usage.models import UsageRecord

LEDGER_TABLES = (
    "usage_spendcounter",
    "usage_spendreservation",
    "usage_usagerecord",
    "usage_usagerollup",
    "prompts_run",
)
WRITES = ("INSERT", "UPDATE", "DELETE", "WITH")


def _measure(action: Callable[[], Any]) -> dict[str, int]:
    statements: list[tuple[str, bool]] = []
    commits: list[bool] = []  # whether each committed transaction wrote
    wrote = [False]

    def record(execute: Any, sql: str, params: Any, many: bool, context: dict[str, Any]) -> Any:
        atomic = context["connection"].in_atomic_block
        statements.append((sql, atomic))
        wrote[0] = wrote[0] or (atomic and sql.lstrip().upper().startswith(WRITES))
        return execute(sql, params, many, context)

    commit = connection.commit

    def counted() -> None:
        commits.append(wrote[0])
        wrote[0] = False
        commit()

    setattr(connection, "commit", counted)  # noqa: B010 - on this thread's connection, for this measure only
    try:
        with connection.execute_wrapper(record):
            action()
    finally:
        del connection.commit
    ledger = [(sql, atomic) for sql, atomic in statements if any(table in sql for table in LEDGER_TABLES)]
    # A write outside a transaction block commits on its own (autocommit); one that turns
    # synchronous_commit off does not wait for its WAL flush, nor does a transaction that wrote nothing.
    autocommits = [sql for sql, atomic in ledger if not atomic and sql.lstrip().upper().startswith(WRITES)]
    asynchronous = [sql for sql in autocommits if "synchronous_commit" in sql]
    return {
        "statements": len(statements),
        "round trips": len(statements) + 2 * len(commits),  # BEGIN and COMMIT are round trips of their own
        "ledger statements": len(ledger),
        "transactions": len(commits),
        "autocommitted writes": len(autocommits),
        "WAL flushes": sum(commits) + len(autocommits) - len(asynchronous),
    }


@pytest.mark.django_db(transaction=True)
def test_a_settled_run_costs_two_ledger_statements_and_one_wal_flush(world, monkeypatch, capsys):
    if connection.vendor != "postgresql":
        pytest.skip("the one-statement path is PostgreSQL's; SQLite runs the ORM path")
    figures = {}
    for sql in (False, True):
        monkeypatch.setattr(settlement, "sql_path", lambda sql=sql: sql)
        assert run(world).status_code == 200  # warm: the period's counters exist, the look-ups are cached
        figures["statement path" if sql else "ORM path"] = _measure(lambda: run(world))
    with capsys.disabled():
        for path, counts in figures.items():
            print(f"\n{path}: " + ", ".join(f"{name} {count}" for name, count in counts.items()))  # noqa: T201 - the figures

    assert UsageRecord.objects.count() == 4
    assert figures["statement path"]["ledger statements"] == 2  # the reservation, the settlement
    assert figures["statement path"]["WAL flushes"] == 1
    assert figures["ORM path"]["ledger statements"] > figures["statement path"]["ledger statements"]
