"""Celery tasks of the usage app: thin wrappers around services."""

from __future__ import annotations

from celery import shared_task

from usage import heartbeat, partitions, services, settlement
from usage.models import BudgetAlert
from usage.monitoring import monitor_alerts_check as check


@shared_task(name="usage.tasks.worker_heartbeat", ignore_result=True)
def worker_heartbeat() -> None:
    heartbeat.worker_heartbeat_record()


@shared_task(name="usage.tasks.ledger_partitions_create", ignore_result=True)
def ledger_partitions_create() -> None:
    partitions.ledger_partitions_create()


@shared_task(name="usage.tasks.reservations_reap", ignore_result=True)
def reservations_reap() -> None:
    settlement.spend_reservations_reap()


@shared_task(
    name=services.BUDGET_ALERT_NOTIFY_TASK,
    ignore_result=True,
    autoretry_for=(OSError,),
    retry_backoff=True,
    max_retries=5,
)
def budget_alert_notify(alert_id: int) -> None:
    services.budget_alert_notify(alert=BudgetAlert.objects.get(pk=alert_id))


@shared_task(name="usage.tasks.monitor_alerts_check", ignore_result=True)
def monitor_alerts_check() -> None:
    check()
