"""Celery tasks of the audit app: thin wrappers around services."""

from __future__ import annotations

from celery import shared_task

from audit.services import audit_checkpoints_write


@shared_task(name="audit.tasks.checkpoints_write", ignore_result=True)
def checkpoints_write() -> None:
    audit_checkpoints_write()
