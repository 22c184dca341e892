"""Celery tasks of the usage app: thin wrappers around services."""

from __future__ import annotations

from celery import shared_task

from usage.services import worker_heartbeat_record


@shared_task(name="usage.tasks.worker_heartbeat", ignore_result=True)
def worker_heartbeat() -> None:
    worker_heartbeat_record()
