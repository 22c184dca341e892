"""Usage writes: spend reservations that hold under concurrency, budget alerts, the price book. A call's
ledger row is written with its settlement (usage.settlement).

A reservation holds the worst case against every applicable cap in one transaction: each cap's counter
is raised by a single conditional UPDATE (`… WHERE spent + reserved + amount <= limit`), which
PostgreSQL re-checks on the locked row, so concurrent requests cannot all read the same balance and all
pass; on SQLite, writers are serialised (BEGIN IMMEDIATE). If any cap refuses, the transaction rolls
back every counter it raised. This is the ORM path, SQLite's; on PostgreSQL usage.settlement runs the
same as one statement (usage.ledger_sql).
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
from core.tasks import task_enqueue_on_commit
from usage.choices import ReservationStatus
from usage.models import BudgetAlert, Price, SpendCounter, SpendReservation
from usage.periods import period_start
from usage.selectors import alert_recipients, price_cache_clear

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


@dataclass(frozen=True)
class CounterSpend:
    """What a counter has spent after a settlement added to it, and the hold (cap) it was added under:
    enough to tell which budget alerts the spend crossed without reading the counter again."""

    counter: int
    period_start: date
    spent_usd: Decimal
    hold: dict[str, Any]


def _close(reservation: SpendReservation, *, status: str, spent: Decimal) -> list[CounterSpend] | None:
    """Give back the hold on every counter and add what was really spent. Idempotent: the reservation
    closes by compare-and-swap, so a second close (the reaper racing a late settle) changes nothing and
    returns None. Returns the counters touched, with what they have spent now."""
    closed = SpendReservation.objects.filter(
        pk=reservation.pk, request_id=reservation.request_id, status=ReservationStatus.HELD
    ).update(status=status, settled_usd=spent, closed_at=timezone.now())
    if not closed:
        return None
    return spend_add(reservation.holds, spent=spent, held=reservation.amount_usd)


def spend_add(holds: list[dict[str, Any]], *, spent: Decimal, held: Decimal = Decimal(0)) -> list[CounterSpend]:
    """Add `spent` to the holds' counters and take `held` off what they reserve, counter by counter in
    id order (the order every writer locks them in). Call inside the settlement's transaction."""
    by_counter = {hold["counter"]: hold for hold in holds}
    for counter_id in sorted(by_counter):
        SpendCounter.objects.filter(pk=counter_id).update(
            reserved_usd=F("reserved_usd") - held, spent_usd=F("spent_usd") + spent
        )
    rows = SpendCounter.objects.filter(pk__in=by_counter).values_list("pk", "period_start", "spent_usd")
    return [CounterSpend(pk, start, total, by_counter[pk]) for pk, start, total in rows]


# Settling and releasing share their caller's transaction when there is one (no savepoint: the settlement
# commits the close with the call's ledger row); alone, each is its own transaction.


def spend_overrun_check(reservation: SpendReservation, actual: Decimal) -> None:
    if actual > reservation.amount_usd:
        # The reservation is the worst case; a call that cost more means the bound is wrong somewhere.
        logger.critical(
            "Reservation %s held %s USD but the call cost %s USD", reservation.pk, reservation.amount_usd, actual
        )


def spend_settle(*, reservation: SpendReservation, actual: Decimal) -> bool:
    """Replace the hold by the real cost. The budget alerts this spend crosses are raised after the
    commit, in a transaction of their own: raising, auditing or notifying an alert can never undo the
    settlement or the ledger row written with it. Returns False when the reservation was closed already
    (the reaper took it for a dead holder's: its ledger row is written)."""
    spend_overrun_check(reservation, actual)
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

# The alerts known to exist, per process: (scope, scope_id, period, period_start, threshold). An alert is
# raised once per cap, period and threshold and never removed, so a settlement whose spend is past a
# threshold touches the database only the first time this process sees it crossed.
_alerts_known: set[tuple[str, int, str, date, int]] = set()


def budget_alerts_forget() -> None:
    """Forget which alerts exist (tests roll the database back under the process)."""
    _alerts_known.clear()


def budget_alerts_check(touched: list[CounterSpend]) -> None:
    """Raise the alerts that the spend on these counters crossed. Runs after the settlement committed; a
    failure is logged and leaves nothing half-done: the next settlement on the cap raises the alert."""
    for spend in touched:
        try:
            _alerts_check(spend, spend.hold)
        except Exception:
            logger.exception(
                "Budget alert check failed for spend counter %s; the next settlement retries", spend.counter
            )


def _alerts_check(spend: CounterSpend, hold: dict[str, Any]) -> None:
    limit = Decimal(hold["limit_usd"])
    if limit <= 0:
        return
    for threshold in sorted({int(hold["threshold_percent"]), 100}):
        known = (hold["scope"], int(hold["scope_id"]), hold["period"], spend.period_start, threshold)
        if spend.spent_usd * 100 < limit * threshold or known in _alerts_known:
            continue
        with transaction.atomic():
            alert, created = BudgetAlert.objects.get_or_create(
                scope=known[0],
                scope_id=known[1],
                period=known[2],
                period_start=known[3],
                threshold_percent=threshold,
                defaults={"label": hold["label"], "spent_usd": spend.spent_usd, "limit_usd": limit},
            )
            if created:
                audit_event_record(
                    action="budget_alert.raise",
                    actor_repr="system",
                    target=alert,
                    changes={
                        "threshold_percent": threshold,
                        "spent_usd": str(spend.spent_usd),
                        "limit_usd": str(limit),
                    },
                )
                task_enqueue_on_commit(BUDGET_ALERT_NOTIFY_TASK, alert.pk)
        transaction.on_commit(partial(_alerts_known.add, known))


def budget_alert_notify(*, alert: BudgetAlert) -> None:
    """E-mail the key custodians and, when configured, post to the alert webhook."""
    text = (
        f"Tollgate budget alert: {alert.label} has spent {alert.spent_usd:.2f} USD, "
        f"{alert.threshold_percent}% or more of its {ADVERB[alert.period]} cap of {alert.limit_usd:.2f} USD "
        f"(period starting {alert.period_start.isoformat()})."
    )
    notify(subject=f"[Tollgate] {alert}", text=text, recipients=alert_recipients(BudgetAlert))


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
