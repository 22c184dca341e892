"""Alerts beyond budgets: slow prompts and error spikes in the last whole hour, raised once per
condition and hour, notified, audited and acknowledged."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.core import mail

from audit.models import AuditEvent
from usage.models import MonitorAlert
from usage.monitoring import monitor_alert_acknowledge, monitor_alerts_check
from usage.settlement import call_settle

pytestmark = pytest.mark.django_db

HOUR = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
NOW = datetime(2026, 11, 2, 10, 2, tzinfo=UTC)


def calls(n: int, *, outcome: str = "ok", latency: int = 100, prompt: str = "summary") -> None:
    for i in range(n):
        call_settle(record={"request_id": f"r{i}", "created_at": HOUR.replace(minute=i % 60),
                            "environment": "production", "prompt_slug": prompt, "endpoint": "run",
                            "requested_model": "m", "model": "m", "outcome": outcome,
                            "latency_total_ms": latency})  # fmt: skip


def test_a_slow_prompt_and_an_error_spike_raise_one_alert_each_per_hour(approver, custodian, settings):
    settings.TOLLGATE_ALERT_P95_MS, settings.TOLLGATE_ALERT_ERROR_RATE, settings.TOLLGATE_ALERT_MIN_CALLS = (
        1000,
        0.05,
        20,
    )
    calls(18, latency=4000, prompt="slow")
    calls(2, latency=100, prompt="slow")
    calls(30, latency=100)
    calls(5, outcome="overloaded", latency=100)

    first = monitor_alerts_check(now=NOW)
    again = monitor_alerts_check(now=NOW)

    assert sorted((alert.kind, alert.subject) for alert in first) == [
        ("error_rate", "production/overloaded"),
        ("latency_p95", "production/slow"),
    ]
    assert again == []  # never repeated for the same condition and hour
    assert MonitorAlert.objects.count() == 2
    assert len(mail.outbox) == 2
    assert sorted(mail.outbox[0].to + mail.outbox[1].to) == sorted([approver.email, custodian.email] * 2)
    slow = MonitorAlert.objects.get(kind="latency_p95")
    assert (slow.value, slow.threshold, slow.window_start) == (5000, 1000, HOUR)
    assert AuditEvent.objects.filter(action="monitor_alert.raise").count() == 2


def test_quiet_hours_and_too_few_calls_raise_nothing(settings):
    settings.TOLLGATE_ALERT_MIN_CALLS = 20
    calls(5, outcome="overloaded", latency=60_000)  # bad, but only 5 calls
    calls(10, latency=100)

    assert monitor_alerts_check(now=NOW) == []


def test_an_approver_acknowledges_with_a_triage_note(approver, settings, client):
    settings.TOLLGATE_ALERT_MIN_CALLS = 1
    calls(3, outcome="timeout")
    (alert,) = monitor_alerts_check(now=NOW)
    client.force_login(approver)

    response = client.post(f"/admin/usage/monitoralert/{alert.pk}/change/", {"triage_note": "upstream incident"})

    alert.refresh_from_db()
    assert response.status_code == 302
    assert (alert.acknowledged_by, alert.triage_note) == (approver, "upstream incident")
    assert AuditEvent.objects.filter(action="monitor_alert.acknowledge", actor=approver).exists()


def test_an_auditor_reads_alerts_but_cannot_acknowledge(auditor, settings):
    settings.TOLLGATE_ALERT_MIN_CALLS = 1
    calls(3, outcome="timeout")
    (alert,) = monitor_alerts_check(now=NOW)

    with pytest.raises(Exception, match="acknowledge"):
        monitor_alert_acknowledge(actor=auditor, alert=alert, note="x")
