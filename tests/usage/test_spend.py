"""Spend caps: reservations that hold under concurrency, settlement, release, reaping, budget alerts."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.core import mail
from django.db import connection

from audit.models import AuditEvent
from core.errors import SpendCapExceeded
from usage import settlement
from usage.models import BudgetAlert, SpendCounter, SpendReservation, UsageRecord
from usage.selectors import spent
from usage.services import Cap, spend_release, spend_settle
from usage.settlement import spend_reserve

pytestmark = pytest.mark.django_db

KEY_CAP = Cap(scope="provider_key", scope_id=1, period="month", limit_usd=Decimal("10.00"), label="prod key")
KEY_DAY_CAP = Cap(scope="provider_key", scope_id=1, period="day", limit_usd=Decimal("3.00"), label="prod key")
CLIENT_CAP = Cap(scope="api_client", scope_id=7, period="month", limit_usd=Decimal("100.00"), label="billing")


ROW = {"environment": "production", "endpoint": "run", "requested_model": "m", "model": "m", "outcome": "ok"}


def counter(cap: Cap) -> SpendCounter:
    return SpendCounter.objects.get(scope=cap.scope, scope_id=cap.scope_id, period=cap.period)


def test_a_reservation_holds_against_every_cap_and_settles_to_the_real_cost():
    reservation = spend_reserve(request_id="r1", caps=[KEY_CAP, CLIENT_CAP], amount=Decimal("2.5"))

    assert counter(KEY_CAP).reserved_usd == counter(CLIENT_CAP).reserved_usd == Decimal("2.5")
    spend_settle(reservation=reservation, actual=Decimal("0.75"))

    for cap in (KEY_CAP, CLIENT_CAP):
        assert (counter(cap).reserved_usd, counter(cap).spent_usd) == (Decimal(0), Decimal("0.75"))
    assert SpendReservation.objects.get().status == "settled"


def test_a_refusal_names_the_cap_and_holds_nothing():
    spend_reserve(request_id="r1", caps=[KEY_CAP, KEY_DAY_CAP], amount=Decimal("2.9"))

    with pytest.raises(SpendCapExceeded) as caught:
        spend_reserve(request_id="r2", caps=[CLIENT_CAP, KEY_CAP, KEY_DAY_CAP], amount=Decimal("0.2"))

    assert caught.value.extra == {"cap": "provider_key", "period": "day"}
    assert "daily prod key spend cap" in caught.value.detail
    assert "0.1" not in caught.value.detail  # what is left is not disclosed
    assert not SpendCounter.objects.filter(scope="api_client", reserved_usd__gt=0).exists()  # rolled back
    assert counter(KEY_CAP).reserved_usd == Decimal("2.9")


def test_a_release_gives_the_hold_back_and_reaping_settles_a_dead_holders_worst_case():
    first = spend_reserve(request_id="r1", caps=[KEY_CAP], amount=Decimal(4))
    spend_reserve(request_id="r2", caps=[KEY_CAP], amount=Decimal(5))

    spend_release(reservation=first)
    with time_machine.travel(datetime.now(tz=UTC) + timedelta(minutes=16)):
        assert settlement.spend_reservations_reap() == 1

    assert counter(KEY_CAP).reserved_usd == Decimal(0)
    # The dead holder's call may have been made: the cap carries what it can have cost.
    assert counter(KEY_CAP).spent_usd == Decimal(5)
    spend_release(reservation=first)  # idempotent
    assert counter(KEY_CAP).reserved_usd == Decimal(0)


def test_periods_are_calendar_months_and_days_in_utc():
    with time_machine.travel(datetime(2026, 1, 31, 23, 59, tzinfo=UTC)):
        spend_settle(reservation=spend_reserve(request_id="a", caps=[KEY_CAP], amount=Decimal(9)), actual=Decimal(9))
    with time_machine.travel(datetime(2026, 2, 1, 0, 1, tzinfo=UTC)):
        spend_reserve(request_id="b", caps=[KEY_CAP], amount=Decimal(9))  # a new month: admitted
        assert spent(scope="provider_key", scope_id=1, period="month") == Decimal(0)
    assert spent(scope="provider_key", scope_id=1, period="month", at=datetime(2026, 1, 5, tzinfo=UTC)) == Decimal(9)


def test_alerts_fire_once_per_threshold_and_period(django_capture_on_commit_callbacks, custodian):
    custodian.email = "custodian@example.com"
    custodian.save()

    def spend(amount: str) -> None:
        # Each settlement commits on its own, and its alerts are raised once it has.
        with django_capture_on_commit_callbacks(execute=True):
            spend_settle(
                reservation=spend_reserve(request_id="r", caps=[KEY_CAP], amount=Decimal(amount)),
                actual=Decimal(amount),
            )

    spend("7.00")
    assert not BudgetAlert.objects.exists()
    spend("1.50")  # 85 %
    spend("0.50")  # 90 %: still the same 80 % alert
    spend("1.00")  # 100 %

    assert list(BudgetAlert.objects.order_by("threshold_percent").values_list("threshold_percent", "spent_usd")) == [
        (80, Decimal("8.5")),
        (100, Decimal("10")),
    ]
    assert len(mail.outbox) == 2
    assert "85" not in mail.outbox[0].subject
    assert "80% or more of its monthly cap of 10.00 USD" in mail.outbox[0].body
    assert AuditEvent.objects.filter(action="budget_alert.raise").count() == 2


def test_ledger_rows_cannot_be_changed_or_removed():
    from usage.models import LedgerIsAppendOnly

    row = settlement.call_settle(
        record={"request_id": "r", "environment": "production", "endpoint": "run", "requested_model": "m",
                "model": "m", "outcome": "ok"}
    ).record  # fmt: skip

    row.outcome = "timeout"
    with pytest.raises(LedgerIsAppendOnly):
        row.save()
    with pytest.raises(LedgerIsAppendOnly):
        row.delete()
    with pytest.raises(LedgerIsAppendOnly):
        UsageRecord.objects.filter(pk=row.pk).update(outcome="timeout")
    with pytest.raises(LedgerIsAppendOnly):
        UsageRecord.objects.all().delete()


@pytest.mark.django_db(transaction=True)
def test_concurrent_reservations_never_exceed_a_cap():
    if connection.vendor != "postgresql":
        pytest.skip("the race needs concurrent connections; SQLite serialises writers (BEGIN IMMEDIATE)")
    cap = Cap(scope="provider_key", scope_id=99, period="month", limit_usd=Decimal("25.00"), label="raced")
    client_cap = Cap(scope="api_client", scope_id=99, period="month", limit_usd=Decimal("1000"), label="client")
    admitted: list[SpendReservation] = []
    refused: list[int] = []
    errors: list[BaseException] = []
    start, reserved = threading.Barrier(60), threading.Barrier(60, timeout=60)
    held_at_peak: list[Decimal] = []

    def attempt() -> None:
        reservation = None
        try:
            start.wait()
            try:
                reservation = spend_reserve(request_id="race", caps=[client_cap, cap], amount=Decimal("1.00"))
                admitted.append(reservation)
            except SpendCapExceeded:
                refused.append(1)
            connection.close()  # back to the pool while waiting, as a caller does across the upstream call
            # Everyone has tried before anyone settles: the peak of what the cap holds.
            if reserved.wait() == 0:
                held_at_peak.append(counter(cap).reserved_usd)
            reserved.wait()
            if reservation is not None:  # the settlement's one statement on PostgreSQL, with the ledger row
                record = {**ROW, "request_id": "race", "call_id": f"race-{reservation.pk}", "cost_usd": Decimal("0.90")}
                settlement.call_settle(record=record, reservation=reservation, spent=Decimal("0.90"))
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt) for _ in range(60)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert (len(admitted), len(refused)) == (25, 35)
    assert held_at_peak == [Decimal("25")]
    final = counter(cap)
    assert final.reserved_usd == Decimal(0)
    assert final.spent_usd == Decimal("22.5")
    assert counter(client_cap).spent_usd == Decimal("22.5")
    assert UsageRecord.objects.filter(request_id="race").count() == 25


def test_the_same_threshold_alerts_again_in_a_new_period(django_capture_on_commit_callbacks):
    def spend(amount: str, at: datetime) -> None:
        with time_machine.travel(at, tick=False):
            spend_settle(
                reservation=spend_reserve(request_id="r", caps=[KEY_CAP], amount=Decimal(amount)),
                actual=Decimal(amount),
            )

    with django_capture_on_commit_callbacks(execute=True):
        spend("8.50", datetime(2026, 1, 10, tzinfo=UTC))
        spend("0.50", datetime(2026, 1, 11, tzinfo=UTC))
        spend("8.50", datetime(2026, 2, 10, tzinfo=UTC))

    assert list(BudgetAlert.objects.order_by("period_start").values_list("period_start", "threshold_percent")) == [
        (date(2026, 1, 1), 80),
        (date(2026, 2, 1), 80),
    ]


@pytest.mark.django_db(transaction=True)
def test_holders_settling_while_reapers_close_the_same_reservations_count_each_call_once():
    """Each holder settles its call at the moment reapers (taking every holder for dead) close the same
    reservations at their worst case: each reservation closes once, with one ledger row, and the counters
    hold exactly the sum of the ledger's costs."""
    if connection.vendor != "postgresql":
        pytest.skip("the race needs concurrent connections; SQLite serialises writers (BEGIN IMMEDIATE)")
    cap = Cap(scope="provider_key", scope_id=98, period="month", limit_usd=Decimal("100"), label="raced")
    holders = 24
    reservations = [
        spend_reserve(
            request_id=f"reaped-{index}",
            caps=[cap],
            amount=Decimal("1.00"),
            ledger={**ROW, "request_id": f"reaped-{index}", "call_id": f"reaped-{index}"},
        )
        for index in range(holders)
    ]
    start = threading.Barrier(holders + 3)
    settled: list[bool] = []
    reaped: list[int] = []
    errors: list[BaseException] = []

    def holder(index: int) -> None:
        try:
            start.wait()
            record = {**ROW, "request_id": f"reaped-{index}", "call_id": f"reaped-{index}", "cost_usd": Decimal("0.25")}
            settled.append(
                settlement.call_settle(record=record, reservation=reservations[index], spent=Decimal("0.25")).settled
            )
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    def reaper() -> None:
        try:
            start.wait()
            reaped.append(settlement.spend_reservations_reap(now=datetime.now(UTC) + timedelta(days=1)))
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=holder, args=(index,)) for index in range(holders)]
    threads += [threading.Thread(target=reaper) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert settled.count(True) + sum(reaped) == holders  # each reservation closed by exactly one of them
    rows = UsageRecord.objects.filter(request_id__startswith="reaped-")
    assert rows.count() == holders
    final = counter(cap)
    assert final.reserved_usd == Decimal(0)
    assert final.spent_usd == sum(row.cost_usd for row in rows)
    assert not SpendReservation.objects.filter(request_id__startswith="reaped-", status="held").exists()
