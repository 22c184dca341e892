"""Usage writes: spend reservations that hold under concurrency, budget alerts, the price book. A call's
ledger row is written with its settlement (usage.settlement).

A reservation holds the worst case against every applicable cap in one transaction: each cap's counter
is raised by a single conditional UPDATE (`… WHERE spent + reserved + amount <= limit`), which
PostgreSQL re-checks on the locked row, so concurrent requests cannot all read the same balance and all
pass; on SQLite, writers are serialised (BEGIN IMMEDIATE). If any cap refuses, the transaction rolls
back every counter it raised.
"""

from __future__ import annotations

import json
import logging
import urllib.request
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.cache import cache
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import DecimalField, F, QuerySet, Value
from django.utils import timezone

from audit.roles import Role
from audit.services import audit_event_record
from config.governance import require_permission, require_reason, save_with_history
from usage.choices import Period, ReservationStatus
from usage.errors import ADVERB, SpendCapExceeded
from usage.models import BudgetAlert, Price, SpendCounter, SpendReservation

logger = logging.getLogger(__name__)

WORKER_HEARTBEAT_KEY = "usage:worker-heartbeat"
# How long a call's holder may take before it is presumed dead. Far longer than a call can last: the SDK
# gives up after TOLLGATE_UPSTREAM_TIMEOUT × (retries + 1), and a stream renews its hold as it flows.
RESERVATION_TTL = timedelta(minutes=15)


def reservation_ttl() -> timedelta:
    longest_call = settings.TOLLGATE_UPSTREAM_TIMEOUT * (settings.TOLLGATE_UPSTREAM_MAX_RETRIES + 1) + 60
    return max(RESERVATION_TTL, timedelta(seconds=longest_call))


def worker_heartbeat_record() -> None:
    """Note that a Celery worker is alive and consuming (read by /readyz)."""
    cache.set(WORKER_HEARTBEAT_KEY, timezone.now().isoformat(), timeout=24 * 60 * 60)


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


def period_start(period: str, at: datetime) -> date:
    """Calendar periods in UTC."""
    day = at.astimezone(UTC).date() if timezone.is_aware(at) else at.date()
    return day.replace(day=1) if period == Period.MONTH else day


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
        return _reserve(request_id=request_id, caps=caps, amount=amount, at=at, ledger=ledger or {}, ttl=ttl)
    except SpendCapExceeded:
        from usage.settlement import spend_reservations_reap  # the settlement module imports this one

        if not spend_reservations_reap():
            raise
    return _reserve(request_id=request_id, caps=caps, amount=amount, at=at, ledger=ledger or {}, ttl=ttl)


def _reserve(
    *, request_id: str, caps: list[Cap], amount: Decimal, at: datetime, ledger: dict[str, Any], ttl: timedelta
) -> SpendReservation:
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
            transaction.on_commit(partial(_budget_alert_enqueue, alert.pk))


def _budget_alert_enqueue(alert_id: int) -> None:
    from usage.tasks import budget_alert_notify  # the task module imports this one

    budget_alert_notify.delay(alert_id)


def notify(*, subject: str, text: str, recipients: QuerySet[User]) -> None:
    """E-mail `recipients` (those with an address) and, when configured, post to the Slack-compatible
    alert webhook."""
    addresses = sorted(set(recipients.exclude(email="").values_list("email", flat=True)))
    if addresses:
        send_mail(subject=subject, message=text, from_email=settings.DEFAULT_FROM_EMAIL, recipient_list=addresses)
    webhook = settings.TOLLGATE_ALERT_WEBHOOK_URL
    if webhook:
        request = urllib.request.Request(  # noqa: S310  (an operator-configured https URL)
            webhook, data=json.dumps({"text": text}).encode(), headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10):  # noqa: S310
            pass


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


def _price_cache_clear() -> None:
    from usage.selectors import price_cache_clear  # selectors import this module

    price_cache_clear()


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
    transaction.on_commit(_price_cache_clear)
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
