"""Settlement: the one way into the ledger (docs/contract.md §7).

Every call ends here — a run, a stream, a job's attempt, an evaluation, a routing classifier, a batch
item, a request refused at its cap, a call whose holder died — and its spend and its ledger row are
recorded together: in one transaction the spend reservation is closed (or, for a batch, added to), the
ledger row written and its hour's roll-up raised. Each is counted once however often the settlement is
tried: a reservation closes by compare-and-swap, and only its closer writes the call's row; a row is
unique per upstream call (`call_id`), and a batch item's cost is added to its batch's reservation only
with the row that records it. So a retried task, a batch collected twice or by two pollers at once, or
the reaper racing a late holder writes nothing and counts nothing the second time. UsageRecord refuses
rows saved anywhere else (`ledger_gate`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import DecimalField, F, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from core.errors import SpendCapExceeded
from usage.choices import Outcome, ReservationStatus
from usage.models import SpendReservation, UsageRecord, ledger_gate
from usage.periods import reservation_ttl
from usage.rollups import rollup_add
from usage.services import Cap, spend_hold, spend_release, spend_settle

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CallSettlement:
    """What one settlement did: `settled` is False when the call had been settled already (its
    reservation closed, or its row written, by an earlier or a concurrent attempt) and nothing changed."""

    settled: bool
    record: UsageRecord | None = None


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
    try:
        return spend_hold(request_id=request_id, caps=caps, amount=amount, at=at, ledger=ledger or {}, ttl=ttl)
    except SpendCapExceeded:
        if not spend_reservations_reap():
            raise
    return spend_hold(request_id=request_id, caps=caps, amount=amount, at=at, ledger=ledger or {}, ttl=ttl)


def call_settle(
    *,
    record: dict[str, Any] | None,
    reservation: SpendReservation | None = None,
    spent: Decimal | None = None,
    shared: bool = False,
) -> CallSettlement:
    """Record one call: close or add to its spend reservation, write its ledger row (`record`: ids and
    names, never bodies or secrets) and its roll-up, in one transaction (the caller's, when there is one).

    - No `reservation`: nothing was held (a request refused at its cap, a batch's failed submission). The
      row is written unless its `call_id` is in the ledger already.
    - A reservation of the call's own: it closes — settled at `spent`, or given back when `spent` is None
      — and the row is written only by whoever closes it. An attempt that finds it closed (the reaper took
      it for a dead holder's, or the close is repeated) writes nothing.
    - A `shared` reservation holds for many calls (a batch's): it stays held, and the row's cost is added
      to what it has settled so far (`settled_usd`) only when the row is written now. Closing it afterwards
      (no record, `spent` = that sum) counts the calls' spend on the caps once.
    """
    with transaction.atomic():
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
        if not closed or record is None:
            return CallSettlement(settled=closed)
        # The close is the claim: a row already under this call id would mean a second reservation for
        # one call, and the whole settlement is undone rather than counted twice.
        return CallSettlement(settled=True, record=_row_write(record, claimed=True))


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
