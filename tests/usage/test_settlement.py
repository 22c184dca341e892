"""The settlement: the one way into the ledger, and each call counted once however often it is settled."""

from __future__ import annotations

import ast
from decimal import Decimal
from pathlib import Path

import pytest
from django.db import IntegrityError, transaction
from django.db.models import Sum
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from usage.models import LedgerWriteRefused, SpendCounter, SpendReservation, UsageRecord, UsageRollup
from usage.services import Cap
from usage.settlement import call_settle, spend_reservation_abandon, spend_reserve

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
KEY_CAP = Cap(scope="provider_key", scope_id=7, period="month", limit_usd=Decimal(1000), label="key")
ROW = {"request_id": "r", "environment": "production", "endpoint": "run", "requested_model": "m", "model": "m",
       "outcome": "ok"}  # fmt: skip


def counter() -> SpendCounter:
    return SpendCounter.objects.get(scope="provider_key", scope_id=7)


# --- the one way in ---------------------------------------------------------------------------------------


def test_a_ledger_row_written_beside_the_settlement_is_refused():
    with pytest.raises(LedgerWriteRefused):
        UsageRecord.objects.create(**ROW)
    with pytest.raises(LedgerWriteRefused):
        UsageRecord(**ROW).save()
    with pytest.raises(LedgerWriteRefused):
        UsageRecord.objects.bulk_create([UsageRecord(**ROW)])
    with pytest.raises(LedgerWriteRefused):
        UsageRecord.objects.get_or_create(**ROW)

    assert not UsageRecord.objects.exists()
    assert call_settle(record=ROW).record == UsageRecord.objects.get()


def _names_in(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    names |= {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
    names |= {alias.asname or alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
              for alias in node.names}  # fmt: skip
    return names


def test_only_the_settlement_opens_the_ledger():
    """The ledger's gate is opened in one module; every other writer goes through `call_settle`."""
    sources = [
        path for path in ROOT.rglob("*.py") if not {".venv", "node_modules", "var"} & set(path.relative_to(ROOT).parts)
    ]
    assert len(sources) > 50  # the scan sees the project
    openers = {str(path.relative_to(ROOT)) for path in sources if "ledger_gate" in _names_in(path)}
    assert openers == {"usage/models.py", "usage/settlement.py"}
    # PostgreSQL's statements insert ledger rows below the model: only the settlement runs them.
    assert {str(path.relative_to(ROOT)) for path in sources if "ledger_sql" in _names_in(path)} == {
        "usage/settlement.py"
    }


# --- each call once -----------------------------------------------------------------------------------------

call_kinds = st.sampled_from(["own", "own_released", "unreserved", "shared"])
costs = st.decimals(0, 2, places=4)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    calls=st.lists(st.tuples(call_kinds, costs), min_size=1, max_size=8),
    repeats=st.lists(st.integers(0, 7), max_size=12),
    closes=st.integers(1, 3),
)
def test_a_settlement_repeated_in_any_order_writes_and_counts_each_call_once(db, calls, repeats, closes):
    with transaction.atomic():
        shared = spend_reserve(request_id="batch", caps=[KEY_CAP], amount=Decimal(20))
        owned = {
            index: spend_reserve(
                request_id=f"call-{index}",
                caps=[KEY_CAP],
                amount=Decimal(2),
                ledger={**ROW, "call_id": f"call-{index}"},
            )
            for index, (kind, _) in enumerate(calls)
            if kind.startswith("own")
        }

        def attempt(index: int) -> bool:
            kind, cost = calls[index]
            record = {**ROW, "call_id": f"call-{index}", "cost_usd": cost if kind != "own_released" else 0}
            if kind == "own":
                return call_settle(record=record, reservation=owned[index], spent=cost).settled
            if kind == "own_released":
                return call_settle(record=record, reservation=owned[index]).settled
            if kind == "unreserved":
                return call_settle(record={**record, "cost_usd": 0}).settled
            return call_settle(record=record, reservation=shared, shared=True).settled

        assert all(attempt(index) for index in range(len(calls)))  # the first attempt of each call
        for index in repeats:
            if index < len(calls):
                assert not attempt(index)  # again: nothing
        for close in range(closes):  # the shared reservation closes at what its calls added, once
            shared.refresh_from_db()
            assert call_settle(record=None, reservation=shared, spent=shared.settled_usd or Decimal(0)).settled == (
                close == 0
            )
        for index in repeats:  # and after it closed
            if index < len(calls):
                assert not attempt(index)

        rows = UsageRecord.objects.all()
        assert sorted(rows.values_list("call_id", flat=True)) == sorted(f"call-{i}" for i in range(len(calls)))
        counted = sum((cost for kind, cost in calls if kind in ("own", "shared")), Decimal(0))
        assert rows.aggregate(total=Sum("cost_usd"))["total"] == counted
        assert (counter().spent_usd, counter().reserved_usd) == (counted, 0)
        assert UsageRollup.objects.aggregate(calls=Sum("calls"))["calls"] == len(calls)
        assert UsageRollup.objects.aggregate(cost=Sum("cost_usd"))["cost"] == counted
        assert not SpendReservation.objects.filter(status="held").exists()
        transaction.set_rollback(True)


def test_the_reaper_and_a_late_holder_record_the_call_once():
    reservation = spend_reserve(request_id="r", caps=[KEY_CAP], amount=Decimal(3), ledger={**ROW, "call_id": "run_1"})

    assert spend_reservation_abandon(reservation=reservation, error_class="HolderLost")
    late = call_settle(record={**reservation.ledger, "cost_usd": Decimal(1)}, reservation=reservation, spent=Decimal(1))

    assert not late.settled
    assert list(UsageRecord.objects.values_list("call_id", "outcome", "cost_usd")) == [
        ("run_1", "server_error", Decimal(3))
    ]
    assert (counter().spent_usd, counter().reserved_usd) == (Decimal(3), 0)
    assert not spend_reservation_abandon(reservation=reservation, error_class="HolderLost")


def test_a_call_id_claimed_by_two_reservations_is_not_counted_twice():
    first = spend_reserve(request_id="a", caps=[KEY_CAP], amount=Decimal(2))
    second = spend_reserve(request_id="b", caps=[KEY_CAP], amount=Decimal(2))
    record = {**ROW, "call_id": "run_same", "cost_usd": Decimal(1)}
    call_settle(record=record, reservation=first, spent=Decimal(1))

    with pytest.raises(IntegrityError):
        call_settle(record=record, reservation=second, spent=Decimal(1))

    assert UsageRecord.objects.count() == 1
    assert (counter().spent_usd, counter().reserved_usd) == (Decimal(1), Decimal(2))  # the second still held
    assert SpendReservation.objects.get(pk=second.pk).status == "held"
