"""Usage writes: spend reservations that hold under concurrency, budget alerts, the price book. A call's
ledger row is written with its settlement (usage.settlement).

A reservation holds the worst case against every applicable cap in one transaction: each cap's counter
is raised by a single conditional UPDATE (`… WHERE spent + reserved + amount <= limit`), which
PostgreSQL re-checks on the locked row, so concurrent requests cannot all read the same balance and all
pass; on SQLite, writers are serialised (BEGIN IMMEDIATE). If any cap refuses, the transaction rolls
back every counter it raised.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import DecimalField, F, Value
from django.utils import timezone

from audit.services import audit_event_record
from core.errors import ADVERB, SpendCapExceeded
from core.governance import require_permission, require_reason, save_with_history
from core.notifications import notify
from core.roles import Role
from core.tasks import task_enqueue_on_commit
from usage.choices import ReservationStatus
from usage.models import BudgetAlert, Price, SpendCounter, SpendReservation
from usage.periods import period_start
from usage.selectors import price_cache_clear

logger = logging.getLogger(__name__)

BUDGET_ALERT_NOTIFY_TASK = "usage.tasks.budget_alert_notify"


# --- spend caps -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cap:
    """One spend limit that applies to a call: whose it is, over which period, and when to warn."""

    scope: str
    scope_id: int
    period: str
    limit_usd: Decimal
    label: str
    threshold_percent: int = 80


def _hold(cap: Cap, start: date, amount: Decimal) -> int | None:
    """Raise the cap's counter by `amount` if the cap can take it: one conditional UPDATE. Returns the
    counter's id, or None when the cap refuses. The counter is created on its period's first use."""
    headroom = Value(cap.limit_usd - amount, output_field=DecimalField(max_digits=20, decimal_places=10))
    counters = SpendCounter.objects.filter(
        scope=cap.scope, scope_id=cap.scope_id, period=cap.period, period_start=start
    )
    for _ in range(2):
        if counters.filter(spent_usd__lte=headroom - F("reserved_usd")).update(reserved_usd=F("reserved_usd") + amount):
            return counters.values_list("pk", flat=True).get()
        if counters.exists():
            return None
        SpendCounter.objects.get_or_create(
            scope=cap.scope, scope_id=cap.scope_id, period=cap.period, period_start=start
        )
    return None


def spend_hold(
    *, request_id: str, caps: list[Cap], amount: Decimal, at: datetime, ledger: dict[str, Any], ttl: timedelta
) -> SpendReservation:
    """Hold `amount` against every cap, all or none, in one transaction (usage.settlement.spend_reserve
    is the callers' way in: it reaps stale holds when a cap refuses)."""
    holds: list[dict[str, Any]] = []
    with transaction.atomic():
        # A fixed order (by scope, id, period) so that concurrent reservations never deadlock.
        for cap in sorted(caps, key=lambda cap: (cap.scope, cap.scope_id, cap.period)):
            counter_id = _hold(cap, period_start(cap.period, at), amount)
            if counter_id is None:
                raise SpendCapExceeded(cap=cap.scope, label=cap.label, period=cap.period)
            holds.append({**asdict(cap), "limit_usd": str(cap.limit_usd), "counter": counter_id})
        return SpendReservation.objects.create(
            request_id=request_id, amount_usd=amount, holds=holds, ledger=ledger, expires_at=timezone.now() + ttl
        )


def _close(reservation: SpendReservation, *, status: str, spent: Decimal) -> list[tuple[int, dict[str, Any]]] | None:
    """Give back the hold on every counter and add what was really spent. Idempotent: the reservation
    closes by compare-and-swap, so a second close (the reaper racing a late settle) changes nothing and
    returns None. Returns the counters touched, with their holds."""
    closed = SpendReservation.objects.filter(pk=reservation.pk, status=ReservationStatus.HELD).update(
        status=status, settled_usd=spent, closed_at=timezone.now()
    )
    if not closed:
        return None
    touched = []
    for hold in reservation.holds:
        SpendCounter.objects.filter(pk=hold["counter"]).update(
            reserved_usd=F("reserved_usd") - reservation.amount_usd, spent_usd=F("spent_usd") + spent
        )
        touched.append((hold["counter"], hold))
    return touched


# Settling and releasing share their caller's transaction when there is one (no savepoint: the settlement
# commits the close with the call's ledger row); alone, each is its own transaction.


def spend_settle(*, reservation: SpendReservation, actual: Decimal) -> bool:
    """Replace the hold by the real cost. The budget alerts this spend crosses are raised after the
    commit, in a transaction of their own: raising, auditing or notifying an alert can never undo the
    settlement or the ledger row written with it. Returns False when the reservation was closed already
    (the reaper took it for a dead holder's: its ledger row is written)."""
    if actual > reservation.amount_usd:
        # The reservation is the worst case; a call that cost more means the bound is wrong somewhere.
        logger.critical(
            "Reservation %s held %s USD but the call cost %s USD", reservation.pk, reservation.amount_usd, actual
        )
    with transaction.atomic(savepoint=False):
        touched = _close(reservation, status=ReservationStatus.SETTLED, spent=actual)
        if touched and actual > 0:
            transaction.on_commit(partial(budget_alerts_check, touched))
    return touched is not None


def spend_release(*, reservation: SpendReservation) -> bool:
    """The call failed before it cost anything: give the hold back. False when it was closed already."""
    with transaction.atomic(savepoint=False):
        return _close(reservation, status=ReservationStatus.RELEASED, spent=Decimal(0)) is not None


def spend_reservation_renew(*, reservation: SpendReservation, ttl: timedelta) -> bool:
    """The holder is alive (a stream still flowing): push the expiry on. False when the reservation was
    closed meanwhile — the reaper took it, and its call's ledger row is written."""
    return bool(
        SpendReservation.objects.filter(pk=reservation.pk, status=ReservationStatus.HELD).update(
            expires_at=timezone.now() + ttl
        )
    )


# --- budget alerts ----------------------------------------------------------------------------------------


def budget_alerts_check(touched: list[tuple[int, dict[str, Any]]]) -> None:
    """Raise the alerts that the spend on these counters crossed. Runs after the settlement committed; a
    failure is logged and leaves nothing half-done: the next settlement on the cap raises the alert."""
    for counter_id, hold in touched:
        try:
            with transaction.atomic():
                _alerts_check(SpendCounter.objects.get(pk=counter_id), hold)
        except Exception:
            logger.exception("Budget alert check failed for spend counter %s; the next settlement retries", counter_id)


def _alerts_check(counter: SpendCounter, hold: dict[str, Any]) -> None:
    limit = Decimal(hold["limit_usd"])
    if limit <= 0:
        return
    for threshold in sorted({int(hold["threshold_percent"]), 100}):
        if counter.spent_usd * 100 < limit * threshold:
            continue
        alert, created = BudgetAlert.objects.get_or_create(
            scope=counter.scope,
            scope_id=counter.scope_id,
            period=counter.period,
            period_start=counter.period_start,
            threshold_percent=threshold,
            defaults={"label": hold["label"], "spent_usd": counter.spent_usd, "limit_usd": limit},
        )
        if created:
            audit_event_record(
                action="budget_alert.raise",
                actor_repr="system",
                target=alert,
                changes={"threshold_percent": threshold, "spent_usd": str(counter.spent_usd), "limit_usd": str(limit)},
            )
            task_enqueue_on_commit(BUDGET_ALERT_NOTIFY_TASK, alert.pk)


def budget_alert_notify(*, alert: BudgetAlert) -> None:
    """E-mail the key custodians and, when configured, post to the alert webhook."""
    text = (
        f"Tollgate budget alert: {alert.label} has spent {alert.spent_usd:.2f} USD, "
        f"{alert.threshold_percent}% or more of its {ADVERB[alert.period]} cap of {alert.limit_usd:.2f} USD "
        f"(period starting {alert.period_start.isoformat()})."
    )
    custodians = User.objects.filter(groups__name=Role.KEY_CUSTODIANS.value, is_active=True)
    notify(subject=f"[Tollgate] {alert}", text=text, recipients=custodians)


@transaction.atomic
def budget_alert_acknowledge(*, actor: User, alert: BudgetAlert, note: str) -> BudgetAlert:
    alert = BudgetAlert.objects.select_for_update().get(pk=alert.pk)
    require_permission(actor, "usage.change_budgetalert", "acknowledge budget alerts")
    alert.acknowledged_by, alert.acknowledged_at, alert.triage_note = actor, timezone.now(), note.strip()
    save_with_history(alert, actor=actor, reason="Acknowledged")
    audit_event_record(
        action="budget_alert.acknowledge", actor=actor, target=alert, changes={"note": alert.triage_note}
    )
    return alert


# --- the ledger -------------------------------------------------------------------------------------------


# --- the price book ---------------------------------------------------------------------------------------


@transaction.atomic
def price_save(*, actor: User, price: Price, reason: str) -> Price:
    """Add or change a price-book entry: with history and an audit event. Stored costs never change:
    each ledger row keeps the cost it was charged and the entry that priced it."""
    require_permission(actor, "usage.change_price" if price.pk else "usage.add_price", "edit the price book")
    reason = require_reason(reason, "change the price book")
    created = price.pk is None
    before: dict[str, Any] = {} if created else dict(Price.objects.values().get(pk=price.pk))
    price.full_clean()
    save_with_history(price, actor=actor, reason=reason)
    transaction.on_commit(price_cache_clear)
    after = Price.objects.values().get(pk=price.pk)
    audit_event_record(
        action="price.create" if created else "price.update",
        actor=actor,
        target=price,
        changes={
            field: [str(before.get(field)) if before else None, str(value)]
            for field, value in after.items()
            if field != "id" and (created or before.get(field) != value)
        },
        reason=reason,
    )
    return price
