"""PostgreSQL's way into the spend counters and the ledger: a reservation is one statement, a settlement
is one statement (docs/contract.md §7). The ORM path in usage.services and usage.settlement does the same
in several statements and is what SQLite runs (its writers are serialised); a property test shows both
produce the same counters, reservations, ledger rows and roll-ups (tests/usage/test_ledger_paths.py).

Locks: a statement takes the row locks it needs at its start and releases them at its end, so no lock is
held across a round trip or Python work. Every writer locks the spend counters in id order (a settlement
locks its reservation row first, which a reservation never locks), so concurrent statements cannot
deadlock.

The reservation commits asynchronously (`synchronous_commit = off`, for its own transaction only, when it
runs outside a transaction of the caller's): the run pays one WAL flush, the settlement's, which also
makes the reservation durable. A crash of PostgreSQL itself can lose a reservation committed in the last
moments before it (with its counters' holds: same transaction); the settlement then finds no reservation
row and still records the call and counts its spend (usage.settlement). What that allows is set out in
docs/guarantees.md.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import date
from decimal import Decimal
from functools import cache
from typing import Any

from django.db import connection, models
from django.utils import timezone

from usage import rollups
from usage.models import SpendCounter, SpendReservation, UsageRecord, UsageRollup
from usage.services import Cap, CounterSpend


def _q(name: str) -> str:
    return connection.ops.quote_name(name)


def insert_values(instance: models.Model, **expressions: str) -> tuple[str, str, list[Any]]:
    """The column list, the value list and its parameters that insert this unsaved instance, built from its
    concrete fields as `save()` would write them (defaults applied, `pre_save` run). `expressions` replace
    a column's value by SQL of the caller's (no parameters)."""
    columns, values, fields = _insert_shape(type(instance), tuple(sorted(expressions.items())))
    return columns, values, [field.get_db_prep_save(field.pre_save(instance, True), connection) for field in fields]


@cache
def _insert_shape(model: type[models.Model], expressions: tuple[tuple[str, str], ...]) -> tuple[str, str, list[Any]]:
    """A model's insert columns and values (placeholders, or the caller's SQL), and the fields whose values
    are parameters: the same for every row of the model, so built once."""
    meta, replaced = model._meta, dict(expressions)
    columns, values, fields = [], [], []
    for field in meta.concrete_fields:
        if field is meta.auto_field:
            continue
        columns.append(_q(field.column))
        if field.column in replaced:
            values.append(replaced[field.column])
        else:
            values.append("%s")
            fields.append(field)
    return ", ".join(columns), ", ".join(values), fields


def _saved(instance: models.Model, pk: int) -> None:
    instance.pk = pk
    instance._state.adding = False
    instance._state.db = connection.alias


# --- the reservation ----------------------------------------------------------------------------------------

RESERVE = """
WITH caps (ord, scope, scope_id, period, period_start, limit_usd, hold) AS (VALUES {caps}),
locked AS (
    SELECT c.id, c.spent_usd, c.reserved_usd, caps.ord, caps.limit_usd, caps.hold
    FROM usage_spendcounter c JOIN caps USING (scope, scope_id, period, period_start)
    ORDER BY c.id FOR UPDATE OF c
),
verdict AS (
    SELECT count(*) AS found,
           min(ord) FILTER (WHERE spent_usd + reserved_usd + %s::numeric > limit_usd) AS refused
    FROM locked
),
raised AS (
    UPDATE usage_spendcounter c SET reserved_usd = c.reserved_usd + %s::numeric
    FROM locked, verdict
    WHERE c.id = locked.id AND verdict.found = %s AND verdict.refused IS NULL
),
reservation AS (
    INSERT INTO usage_spendreservation ({columns}) SELECT {values} FROM verdict
    WHERE verdict.found = %s AND verdict.refused IS NULL
    RETURNING id, holds
)
SELECT (SELECT id FROM reservation), (SELECT holds::text FROM reservation), found, refused{durability}
FROM verdict
"""
HOLDS = "(SELECT jsonb_agg(hold || jsonb_build_object('counter', id) ORDER BY ord) FROM locked)"
CAP = "(%s, %s::text, %s::bigint, %s::text, %s::date, %s::numeric, %s::jsonb)"


def reserve(*, reservation: SpendReservation, caps: list[Cap], starts: list[date]) -> Cap | None:
    """Hold `reservation.amount_usd` against every cap (`caps` in lock order, each with its period's start),
    all or none, and insert the reservation: one statement. Returns the first cap that refused (None: held;
    the reservation is saved, its `holds` filled in). A counter missing for its period is created first."""
    amount = reservation.amount_usd
    columns, values, params = insert_values(reservation, holds=HOLDS)
    cap_params: list[Any] = []
    for index, (cap, start) in enumerate(zip(caps, starts, strict=True)):
        hold = {**asdict(cap), "limit_usd": str(cap.limit_usd)}
        cap_params += [index, cap.scope, cap.scope_id, cap.period, start, cap.limit_usd, json.dumps(hold)]
    # Outside a transaction of the caller's, the statement is its own transaction: it commits without
    # waiting for its WAL flush (the settlement's flush makes it durable).
    durability = "" if connection.in_atomic_block else ", set_config('synchronous_commit', 'off', true)"
    sql = RESERVE.format(caps=", ".join([CAP] * len(caps)), columns=columns, values=values, durability=durability)
    for attempt in range(2):
        with connection.cursor() as cursor:
            cursor.execute(sql, [*cap_params, amount, amount, len(caps), *params, len(caps)])
            pk, holds, found, refused = cursor.fetchone()[:4]
        if found == len(caps):
            if refused is not None:
                return caps[int(refused)]
            reservation.holds = json.loads(holds)
            _saved(reservation, pk)
            return None
        if attempt == 0:  # a period's first use: create its counters, then try again
            _counters_create(caps, starts)
    raise RuntimeError("spend counters missing after they were created")


COUNTERS = "INSERT INTO usage_spendcounter ({columns}) VALUES {rows} ON CONFLICT DO NOTHING"


def _counters_create(caps: list[Cap], starts: list[date]) -> None:
    rows = [
        insert_values(SpendCounter(scope=cap.scope, scope_id=cap.scope_id, period=cap.period, period_start=start))
        for cap, start in zip(caps, starts, strict=True)
    ]
    columns = rows[0][0]
    sql = COUNTERS.format(columns=columns, rows=", ".join(f"({values})" for _, values, _ in rows))
    with connection.cursor() as cursor:
        cursor.execute(sql, [param for _, _, params in rows for param in params])


# --- the settlement -----------------------------------------------------------------------------------------

SETTLE = """
WITH closed AS (
    UPDATE usage_spendreservation SET status = %s, settled_usd = %s::numeric, closed_at = %s
    WHERE id = %s AND request_id = %s AND status = 'held'
    RETURNING id
),
locked AS (
    SELECT id FROM usage_spendcounter
    WHERE id = ANY(%s::bigint[]) AND EXISTS (SELECT FROM closed)
    ORDER BY id FOR UPDATE
),
counters AS (
    UPDATE usage_spendcounter c
    SET reserved_usd = c.reserved_usd - %s::numeric, spent_usd = c.spent_usd + %s::numeric
    FROM locked WHERE c.id = locked.id
    RETURNING c.id, c.period_start, c.spent_usd
){more}
SELECT EXISTS (SELECT FROM closed),
       EXISTS (SELECT FROM usage_spendreservation WHERE id = %s AND request_id = %s),
       {record_id}, {log_id},
       (SELECT json_agg(json_build_array(id, period_start, spent_usd::text))::text FROM counters)
"""
RECORD = """,
record AS (
    INSERT INTO usage_usagerecord ({columns}) SELECT {values} WHERE EXISTS (SELECT FROM closed)
    RETURNING id
),
rollup AS (
    INSERT INTO usage_usagerollup ({rollup_columns}) SELECT {rollup_values} WHERE EXISTS (SELECT FROM record)
    ON CONFLICT (key) DO UPDATE SET {increments}
)"""
LOG = """,
log AS (
    INSERT INTO {table} ({columns}) VALUES ({values})
    RETURNING id
)"""


def settle(
    *,
    reservation: SpendReservation,
    status: str,
    spent: Decimal,
    record: UsageRecord | None,
    log: models.Model | None,
) -> tuple[str, list[CounterSpend]]:
    """Close the reservation (compare-and-swap), give back its hold and add `spent` on its counters, write
    the call's ledger row and its hour's roll-up, and insert `log` (the caller's request-log row, written
    whatever the reservation's state): one statement. Returns what became of the reservation — "closed",
    "closed already" (by an earlier or concurrent settlement, or the reaper: nothing was written but the
    log row) or "missing" (lost: nothing was written but the log row) — and the counters' spend now."""
    more, params = "", list[Any]()
    if record is not None:
        columns, values, params = insert_values(record)
        key, dimensions, increments = rollups.rollup_increments(record)
        rollup_columns, rollup_values, rollup_params = insert_values(UsageRollup(key=key, **dimensions, **increments))
        more += RECORD.format(
            columns=columns,
            values=values,
            rollup_columns=rollup_columns,
            rollup_values=rollup_values,
            increments=", ".join(
                f"{_q(name)} = usage_usagerollup.{_q(name)} + EXCLUDED.{_q(name)}" for name in increments
            ),
        )
        params += rollup_params
    if log is not None:
        columns, values, log_params = insert_values(log)
        more += LOG.format(table=_q(log._meta.db_table), columns=columns, values=values)
        params += log_params
    holds = {hold["counter"]: hold for hold in reservation.holds}
    sql = SETTLE.format(
        more=more,
        record_id="(SELECT id FROM record)" if record is not None else "NULL",
        log_id="(SELECT id FROM log)" if log is not None else "NULL",
    )
    with connection.cursor() as cursor:
        cursor.execute(
            sql,
            [
                status,
                spent,
                timezone.now(),
                reservation.pk,
                reservation.request_id,
                sorted(holds),
                reservation.amount_usd,
                spent,
                *params,
                reservation.pk,
                reservation.request_id,
            ],
        )
        closed, present, record_id, log_id, counters = cursor.fetchone()
    if log is not None:
        _saved(log, log_id)
    if not closed:
        return ("closed already" if present else "missing"), []
    if record is not None:
        _saved(record, record_id)
    return "closed", [
        CounterSpend(counter, date.fromisoformat(start), Decimal(total), holds[counter])
        for counter, start, total in json.loads(counters or "[]")
    ]
