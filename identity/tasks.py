"""Celery tasks of the identity app: thin wrappers around services."""

from __future__ import annotations

from celery import shared_task

from identity.sessions import sessions_clear_ended


@shared_task(name="identity.tasks.sessions_clear", ignore_result=True)
def sessions_clear() -> None:
    """Hourly: delete the rows of sessions past their idle timeout or lifetime."""
    sessions_clear_ended()
