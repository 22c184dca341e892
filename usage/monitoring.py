"""Alerts beyond budgets: each hour, the last whole hour's roll-ups are checked for a prompt whose p95
latency is over TOLLGATE_ALERT_P95_MS and for an upstream error class over TOLLGATE_ALERT_ERROR_RATE of
an environment's calls (both only with at least TOLLGATE_ALERT_MIN_CALLS calls); the weekly evaluation
raises quality drift (evaluations.services). A condition raises one alert per window (a unique
constraint), notified by e-mail to approvers and custodians and to the alert webhook, recorded in the
audit trail, and acknowledged in the admin with a triage note."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.utils import timezone

from audit.services import audit_event_record
from core.governance import require_permission
from core.notifications import notify
from usage.choices import UPSTREAM_ERRORS, Outcome
from usage.models import LATENCY_BUCKET_FIELDS, MonitorAlert, UsageRollup
from usage.rollups import percentile
from usage.selectors import alert_recipients


def _conditions(hour: datetime) -> list[dict[str, Any]]:
    rows = UsageRollup.objects.filter(hour=hour)
    minimum = settings.TOLLGATE_ALERT_MIN_CALLS
    found = []
    latency = rows.values("environment", "prompt_slug").annotate(
        **{field: Sum(field) for field in LATENCY_BUCKET_FIELDS}
    )
    for row in latency:
        buckets = [row[field] or 0 for field in LATENCY_BUCKET_FIELDS]
        p95 = percentile(buckets, 0.95)
        if sum(buckets) >= minimum and p95 is not None and p95 > settings.TOLLGATE_ALERT_P95_MS:
            subject = f"{row['environment']}/{row['prompt_slug']}"
            found.append({"kind": MonitorAlert.Kind.LATENCY_P95, "subject": subject, "value": p95,
                          "threshold": settings.TOLLGATE_ALERT_P95_MS,
                          "message": f"p95 latency of {subject} was over {p95} ms in the hour from {hour:%H:%M} UTC "
                                     f"(threshold {settings.TOLLGATE_ALERT_P95_MS} ms)"})  # fmt: skip
    totals: dict[str, int] = {}
    by_class: dict[tuple[str, str], int] = {}
    for row in rows.values("environment", "outcome").annotate(calls=Sum("calls")):
        totals[row["environment"]] = totals.get(row["environment"], 0) + row["calls"]
        by_class[(row["environment"], row["outcome"])] = row["calls"]
    for (environment, outcome), calls in sorted(by_class.items()):
        total = totals[environment]
        rate = calls / total
        if outcome in UPSTREAM_ERRORS and total >= minimum and rate > settings.TOLLGATE_ALERT_ERROR_RATE:
            subject = f"{environment}/{outcome}"
            found.append({"kind": MonitorAlert.Kind.ERROR_RATE, "subject": subject, "value": rate,
                          "threshold": settings.TOLLGATE_ALERT_ERROR_RATE,
                          "message": f"{Outcome(outcome).label} was {rate:.1%} of {total} calls in {environment} in "
                                     f"the hour from {hour:%H:%M} UTC (threshold "
                                     f"{settings.TOLLGATE_ALERT_ERROR_RATE:.0%})"})  # fmt: skip
    return found


def monitor_alerts_check(*, now: datetime | None = None) -> list[MonitorAlert]:
    """Raise the alerts of the last whole hour that were not raised yet; returns the new ones."""
    hour = (now or timezone.now()).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    raised = [monitor_alert_raise(window_start=hour, **condition) for condition in _conditions(hour)]
    return [alert for alert in raised if alert is not None]


def monitor_alert_raise(
    *, kind: str, subject: str, window_start: datetime, value: float, threshold: float, message: str
) -> MonitorAlert | None:
    """Record, audit and notify a condition once per window: None when it was raised already."""
    try:
        with transaction.atomic():
            alert = MonitorAlert.objects.create(
                kind=kind, subject=subject, window_start=window_start, value=value, threshold=threshold, message=message
            )
            audit_event_record(
                action="monitor_alert.raise",
                actor_repr="system",
                target=alert,
                changes={"kind": alert.kind, "subject": alert.subject, "value": alert.value},
            )
    except IntegrityError:
        return None  # raised already for this condition and window
    notify(
        subject=f"[Tollgate] {alert.get_kind_display()}: {alert.subject}",
        text=alert.message,
        recipients=alert_recipients(MonitorAlert),
    )
    return alert


@transaction.atomic
def monitor_alert_acknowledge(*, actor: User, alert: MonitorAlert, note: str) -> MonitorAlert:
    require_permission(actor, "usage.change_monitoralert", "acknowledge alerts")
    alert = MonitorAlert.objects.select_for_update().get(pk=alert.pk)
    alert.acknowledged_by, alert.acknowledged_at, alert.triage_note = actor, timezone.now(), note.strip()
    alert.save(update_fields=["acknowledged_by", "acknowledged_at", "triage_note"])
    audit_event_record(
        action="monitor_alert.acknowledge", actor=actor, target=alert, changes={"note": alert.triage_note}
    )
    return alert
