"""Settlement: the one way into the ledger (docs/contract.md §7).

Every call ends here — a run, a stream, a job's attempt, an evaluation, a routing classifier, a batch
item, a request refused at its cap, a call whose holder died — and its spend and its ledger row are
recorded together: in one transaction the spend reservation is closed (or, for a batch, added to), the
ledger row written and its hour's roll-up raised. Each is counted once however often the settlement is
tried: a reservation closes by compare-and-swap, and only its closer writes the call's row; a row is
unique per upstream call (`call_id`), and a batch item's cost is added to its batch's reservation only
with the row that records it. So a retried task, a batch collected twice or by two pollers at once, or
the reaper racing a late holder writes nothing and counts nothing the second time. UsageRecord refuses
rows saved anywhere else (`ledger_gate`); on PostgreSQL a call's reservation and its settlement are one
statement each (usage.ledger_sql, run only from here), with the same outcome.
"""

from __future__ import annotations

import logging
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any

from django.db import DatabaseError, IntegrityError, connection, models, transaction
from django.db.models import DecimalField, F, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from core.errors import SpendCapExceeded
from usage import ledger_sql
from usage.choices import Outcome, ReservationStatus
from usage.models import SpendReservation, UsageRecord, ledger_gate
from usage.periods import period_start, reservation_ttl
from usage.rollups import rollup_add
from usage.services import (
    Cap,
    CounterSpend,
    budget_alerts_check,
    spend_add,
    spend_hold,
    spend_overrun_check,
    spend_release,
    spend_settle,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CallSettlement:
    """What one settlement did: `settled` is False when the call had been settled already (its
    reservation closed, or its row written, by an earlier or a concurrent attempt) and nothing changed."""

    settled: bool
    record: UsageRecord | None = None


def sql_path() -> bool:
    """Whether reservations and settlements run as one PostgreSQL statement each (usage.ledger_sql) or
    through the ORM (SQLite, whose writers are serialised). The two produce the same counters, ledger and
    roll-ups; tests run both."""
    return connection.vendor == "postgresql"


def spend_reserve(
    *,
    request_id: str,
    caps: list[Cap],
    amount: Decimal,
    at: datetime | None = None,
    ledger: dict[str, Any] | None = None,
    ttl: timedelta | None = None,
) -> SpendReservation:
    """Hold `amount` against every cap, all or none. Raises SpendCapExceeded naming the first cap that
    cannot take it.

    `ledger` is the call's write-ahead record (its ledger row's identifying fields): should the holder die
    before settling, the reaper writes the call's ledger row from it. `ttl` is how long the holder may
    take before it is presumed dead. A cap that refuses is tried once more after stale holds are reaped,
    so a crashed process cannot block a cap where no beat task runs (the embedded default)."""
    at, ttl = at or timezone.now(), ttl or reservation_ttl()
    hold = _hold_sql if caps and sql_path() else spend_hold
    try:
        return hold(request_id=request_id, caps=caps, amount=amount, at=at, ledger=ledger or {}, ttl=ttl)
    except SpendCapExceeded:
        if not spend_reservations_reap():
            raise
    return hold(request_id=request_id, caps=caps, amount=amount, at=at, ledger=ledger or {}, ttl=ttl)


def _hold_sql(
    *, request_id: str, caps: list[Cap], amount: Decimal, at: datetime, ledger: dict[str, Any], ttl: timedelta
) -> SpendReservation:
    """`spend_hold` in one statement; the caps in the same order, so the same cap is named on refusal."""
    ordered = sorted(caps, key=lambda cap: (cap.scope, cap.scope_id, cap.period))
    reservation = SpendReservation(
        request_id=request_id, amount_usd=amount, ledger=ledger, expires_at=timezone.now() + ttl
    )
    refused = ledger_sql.reserve(
        reservation=reservation, caps=ordered, starts=[period_start(cap.period, at) for cap in ordered]
    )
    if refused is not None:
        raise SpendCapExceeded(cap=refused.scope, label=refused.label, period=refused.period)
    return reservation


def call_settle(
    *,
    record: dict[str, Any] | None,
    reservation: SpendReservation | None = None,
    spent: Decimal | None = None,
    shared: bool = False,
    log: models.Model | None = None,
) -> CallSettlement:
    """Record one call: close or add to its spend reservation, write its ledger row (`record`: ids and
    names, never bodies or secrets) and its roll-up, in one transaction (the caller's, when there is one).

    - No `reservation`: nothing was held (a request refused at its cap, a batch's failed submission). The
      row is written unless its `call_id` is in the ledger already.
    - A reservation of the call's own: it closes — settled at `spent`, or given back when `spent` is None
      — and the row is written only by whoever closes it. An attempt that finds it closed (the reaper took
      it for a dead holder's, or the close is repeated) writes nothing. One that finds it missing (lost
      with a crash of PostgreSQL: it committed asynchronously) writes the row unless its `call_id` is in
      the ledger, and counts its spend on the caps it held, without a hold to give back.
    - A `shared` reservation holds for many calls (a batch's): it stays held, and the row's cost is added
      to what it has settled so far (`settled_usd`) only when the row is written now. Closing it afterwards
      (no record, `spent` = that sum) counts the calls' spend on the caps once.

    `log` is the caller's request-log row (an unsaved instance), written with the settlement whatever it
    finds; should it fail, the settlement is written without it and the failure logged.
    """
    if reservation is not None and not shared and sql_path():
        return _settle_sql(record=record, reservation=reservation, spent=spent, log=log)
    with transaction.atomic():
        settlement = _settle(record=record, reservation=reservation, spent=spent, shared=shared)
        if log is not None:
            try:
                with transaction.atomic():
                    log.save(force_insert=True)
            except Exception:
                _log_failed(log)
    return settlement


def _settle(
    *, record: dict[str, Any] | None, reservation: SpendReservation | None, spent: Decimal | None, shared: bool
) -> CallSettlement:
    if reservation is None:
        row = _row_write(record, claimed=False) if record is not None else None
        return CallSettlement(settled=row is not None or record is None, record=row)
    if shared:
        if record is None:
            raise TypeError("a call settled against a shared reservation has a ledger row")
        row = _row_write(record, claimed=False)
        if row is not None and row.cost_usd:
            SpendReservation.objects.filter(pk=reservation.pk, status=ReservationStatus.HELD).update(
                settled_usd=Coalesce(F("settled_usd"), _amount(Decimal(0))) + _amount(row.cost_usd)
            )
        return CallSettlement(settled=row is not None, record=row)
    if spent is None:
        closed = spend_release(reservation=reservation)
    else:
        closed = spend_settle(reservation=reservation, actual=spent)
    if not closed:
        if not SpendReservation.objects.filter(pk=reservation.pk, request_id=reservation.request_id).exists():
            return _lost_settle(record=record, reservation=reservation, spent=spent)
        return CallSettlement(settled=False)
    if record is None:
        return CallSettlement(settled=True)
    # The close is the claim: a row already under this call id would mean a second reservation for
    # one call, and the whole settlement is undone rather than counted twice.
    return CallSettlement(settled=True, record=_row_write(record, claimed=True))


def _settle_sql(
    *, record: dict[str, Any] | None, reservation: SpendReservation, spent: Decimal | None, log: models.Model | None
) -> CallSettlement:
    """`_settle` for a reservation of the call's own, in one statement (usage.ledger_sql), with the log row."""
    if spent is not None:
        spend_overrun_check(reservation, spent)
    row = UsageRecord(**record) if record is not None else None
    status = ReservationStatus.RELEASED if spent is None else ReservationStatus.SETTLED

    def attempt(log: models.Model | None) -> tuple[str, list[CounterSpend]]:
        # Inside a caller's transaction a failed statement would abort it: a savepoint keeps it usable.
        with transaction.atomic() if connection.in_atomic_block else nullcontext():
            return ledger_sql.settle(
                reservation=reservation, status=status, spent=spent or Decimal(0), record=row, log=log
            )

    try:
        state, touched = attempt(log)
    except DatabaseError:
        if log is None:
            raise
        _log_failed(log)
        state, touched = attempt(None)
    if state == "missing":
        with transaction.atomic():
            return _lost_settle(record=record, reservation=reservation, spent=spent)
    if state != "closed":
        return CallSettlement(settled=False)
    if touched and spent:
        transaction.on_commit(partial(budget_alerts_check, touched))
    return CallSettlement(settled=True, record=row)


def _lost_settle(
    *, record: dict[str, Any] | None, reservation: SpendReservation, spent: Decimal | None
) -> CallSettlement:
    """The reservation is gone — it committed asynchronously and PostgreSQL crashed before it was flushed
    (usage.ledger_sql), taking its holds with it — while its call went ahead. The call is recorded all the
    same, once: its row is written unless its `call_id` is in the ledger, and with it its spend is added to
    the counters it held (no hold to give back). Call inside a transaction."""
    logger.error(
        "Reservation %s of %s is missing (lost in a database crash?): the call is recorded without its hold",
        reservation.pk,
        reservation.request_id,
    )
    if record is None:
        return CallSettlement(settled=True)
    row = _row_write(record, claimed=False)
    if row is None:
        return CallSettlement(settled=False)
    if spent:
        transaction.on_commit(partial(budget_alerts_check, spend_add(reservation.holds, spent=spent)))
    return CallSettlement(settled=True, record=row)


def _log_failed(log: models.Model) -> None:
    # The call is paid for and recorded in the ledger: the caller gets its answer. Only the request-log
    # row is missing, and the log says so.
    logger.exception("%s %s: the request-log row could not be written; the call is recorded", log._meta.label, log)


def _amount(value: Decimal) -> Value:
    return Value(value, output_field=DecimalField(max_digits=20, decimal_places=10))


def _row_write(fields: dict[str, Any], *, claimed: bool) -> UsageRecord | None:
    """Append the row and add it to its hour's roll-up. Unclaimed, a row whose `call_id` is in the
    ledger already is not written again (None): the unique call id decides, also between racers."""
    gate = ledger_gate.set(True)
    try:
        if claimed or not fields.get("call_id"):
            with transaction.atomic(savepoint=False):
                row = UsageRecord.objects.create(**fields)
                rollup_add(row)
            return row
        try:
            with transaction.atomic():  # a savepoint: a duplicate call id undoes this row only
                row = UsageRecord.objects.create(**fields)
                rollup_add(row)
        except IntegrityError:
            if UsageRecord.objects.filter(call_id=fields["call_id"]).exists():
                return None
            raise
        return row
    finally:
        ledger_gate.reset(gate)


def spend_reservation_abandon(*, reservation: SpendReservation, error_class: str) -> bool:
    """Close a reservation whose holder died (a killed process or worker). The call may have reached
    Anthropic and its tokens are unknown, so the worst case it held is settled — the cap never carries
    less than the call can have cost — and, when the reservation carries a write-ahead record, the call's
    ledger row is written at that cost. False when the reservation was closed already. Should the holder
    turn out alive after all, its own settlement finds the reservation closed and writes no second row."""
    record = None
    if reservation.ledger:
        record = {
            **reservation.ledger,
            "outcome": Outcome.SERVER_ERROR,
            "error_class": error_class,
            "cost_usd": reservation.amount_usd,
        }
    if not call_settle(record=record, reservation=reservation, spent=reservation.amount_usd).settled:
        return False
    logger.warning("Reservation %s of %s was abandoned (%s)", reservation.pk, reservation.request_id, error_class)
    return True


def spend_reservations_reap(*, now: datetime | None = None) -> int:
    """Close reservations whose holder died (a killed worker, a crashed process): their time is up."""
    stale = SpendReservation.objects.filter(status=ReservationStatus.HELD, expires_at__lt=now or timezone.now())
    count = sum(spend_reservation_abandon(reservation=reservation, error_class="HolderLost") for reservation in stale)
    if count:
        logger.warning("Closed %d stale spend reservation(s)", count)
    return count
