"""PostgreSQL's one-statement reservation and settlement (usage.ledger_sql) against the ORM path: the same
generated sequence of calls and faults leaves the same ledger, counters, reservations and roll-ups."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import time_machine
from django.db import connection, transaction
from django.db.models import F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.errors import SpendCapExceeded
from usage import settlement
from usage.models import MonitorAlert, SpendCounter, SpendReservation, UsageRecord, UsageRollup
from usage.services import Cap
from usage.settlement import call_settle, spend_reservation_abandon, spend_reservations_reap, spend_reserve

pytestmark = pytest.mark.django_db

CAPS = (
    Cap(scope="provider_key", scope_id=3, period="month", limit_usd=Decimal(6), label="key"),
    Cap(scope="provider_key", scope_id=3, period="day", limit_usd=Decimal(4), label="key"),
    Cap(scope="api_client", scope_id=5, period="month", limit_usd=Decimal(5), label="client", threshold_percent=50),
)
ROW = {"environment": "production", "endpoint": "run", "requested_model": "m", "model": "m"}
NOW = datetime(2026, 3, 14, 15, 9, tzinfo=UTC)
WINDOW = datetime(2026, 3, 14, 15, tzinfo=UTC)

amounts = st.decimals(Decimal("0.5"), 3, places=1)
costs = st.one_of(st.just(Decimal(0)), st.decimals(0, 3, places=2))
logs = st.sampled_from(["none", "good", "broken"])  # broken: a request-log row the database refuses
operations = st.one_of(
    st.tuples(st.just("reserve"), st.sets(st.integers(0, 2), min_size=1), amounts, st.booleans()),
    st.tuples(st.just("settle"), st.integers(0, 7), costs, logs, st.sampled_from(["ok", "timeout"])),
    st.tuples(st.just("release"), st.integers(0, 7), st.booleans(), logs),
    st.tuples(st.just("abandon"), st.integers(0, 7)),
    st.tuples(st.just("reap")),  # every reservation past its expiry
    st.tuples(st.just("lose"), st.integers(0, 7)),
)


def _record(index: int, cost: Decimal, outcome: str) -> dict[str, Any]:
    return {
        **ROW,
        "request_id": f"call-{index}",
        "call_id": f"call-{index}",
        "cost_usd": cost,
        "outcome": outcome,
        "output_tokens": int(cost * 100),
        "latency_total_ms": int(cost * 1000) or None,
        "checks": {"passed": cost > 1} if cost else {},
    }


def _log(index: int, kind: str) -> MonitorAlert | None:
    if kind == "none":
        return None
    subject = "taken" if kind == "broken" else f"call-{index}"  # "taken" exists: a unique constraint refuses it
    return MonitorAlert(kind="error_rate", subject=subject, window_start=WINDOW, value=1, threshold=1, message="m")


def _run(sequence: list[tuple[Any, ...]]) -> list[Any]:
    """Run the sequence; what each operation answered."""
    MonitorAlert.objects.create(kind="error_rate", subject="taken", window_start=WINDOW, value=1, threshold=1)
    held: list[SpendReservation] = []
    answers: list[Any] = []
    for operation in sequence:
        kind, *args = operation
        if kind == "reserve":
            chosen, amount, with_ledger = args
            index = len(held)
            ledger = {**ROW, "request_id": f"call-{index}", "call_id": f"call-{index}"} if with_ledger else {}
            try:
                caps = [CAPS[i] for i in sorted(chosen)]
                held.append(spend_reserve(request_id=f"call-{index}", caps=caps, amount=amount, ledger=ledger))
                answers.append("held")
            except SpendCapExceeded as refused:
                answers.append(refused.extra)
            continue
        if kind == "reap":
            answers.append(spend_reservations_reap(now=NOW + timedelta(days=1)))
            continue
        if not held:
            continue
        index = args[0] % len(held)
        reservation = held[index]
        if kind == "settle":
            _, cost, log, outcome = args
            result = call_settle(
                record=_record(index, cost, outcome), reservation=reservation, spent=cost, log=_log(index, log)
            )
            answers.append((result.settled, result.record is not None))
        elif kind == "release":
            _, with_record, log = args
            record = _record(index, Decimal(0), "client_error") if with_record else None
            result = call_settle(record=record, reservation=reservation, log=_log(index, log))
            answers.append((result.settled, result.record is not None))
        elif kind == "abandon":  # the reaper, for a holder presumed dead; the holder may settle later
            answers.append(spend_reservation_abandon(reservation=reservation, error_class="HolderLost"))
        elif SpendReservation.objects.filter(pk=reservation.pk, status="held").exists():
            # "lose": an asynchronous commit lost in a crash, the row and its holds gone together
            SpendCounter.objects.filter(pk__in=[hold["counter"] for hold in reservation.holds]).update(
                reserved_usd=F("reserved_usd") - reservation.amount_usd
            )
            SpendReservation.objects.filter(pk=reservation.pk).delete()
    return answers


def _state() -> dict[str, Any]:
    counters = {
        counter.pk: (counter.scope, counter.scope_id, counter.period, counter.period_start)
        for counter in SpendCounter.objects.all()
    }
    ignore = {"id", "created_at", "closed_at", "expires_at"}

    def values(model: Any, *order: str) -> list[dict[str, Any]]:
        return [{k: v for k, v in row.items() if k not in ignore} for row in model.objects.order_by(*order).values()]

    reservations = values(SpendReservation, "request_id")
    for reservation in reservations:
        reservation["holds"] = [{**hold, "counter": counters[hold["counter"]]} for hold in reservation["holds"]]
    return {
        "ledger": values(UsageRecord, "call_id", "request_id"),
        "rollups": values(UsageRollup, "key"),
        "reservations": reservations,
        # A counter created but never raised is the same as none.
        "counters": sorted(
            (key, counter.spent_usd, counter.reserved_usd)
            for pk, key in counters.items()
            if (counter := SpendCounter.objects.get(pk=pk)).spent_usd or counter.reserved_usd
        ),
        "logs": sorted(MonitorAlert.objects.values_list("subject", flat=True)),
    }


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sequence=st.lists(operations, min_size=1, max_size=14))
def test_the_statement_path_and_the_orm_path_leave_the_same_books(db, monkeypatch, sequence):
    if connection.vendor != "postgresql":
        pytest.skip("usage.ledger_sql is PostgreSQL's path; SQLite runs the ORM path only")
    outcomes = {}
    for sql in (False, True):
        monkeypatch.setattr(settlement, "sql_path", lambda sql=sql: sql)
        with time_machine.travel(NOW, tick=False), transaction.atomic():
            outcomes[sql] = (_run(sequence), _state())
            transaction.set_rollback(True)
    assert outcomes[True][0] == outcomes[False][0]
    assert outcomes[True][1] == outcomes[False][1]
