"""Celery tasks of the audit app: thin wrappers around services."""

from __future__ import annotations

from celery import shared_task

from audit.services import audit_chain_verify_recorded, audit_checkpoints_write


@shared_task(name="audit.tasks.checkpoints_write", ignore_result=True)
def checkpoints_write() -> None:
    audit_checkpoints_write()


@shared_task(name="audit.tasks.chain_verify", ignore_result=True)
def chain_verify() -> None:
    """The whole chain against its checkpoints and anchors, once a day; the result is an audit event."""
    audit_chain_verify_recorded(actor_repr="system")
