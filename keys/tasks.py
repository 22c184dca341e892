"""Celery tasks of the keys app: thin wrappers around services."""

from __future__ import annotations

from celery import shared_task

from keys.services import provider_key_reminders_send, provider_keys_expire_grace


@shared_task(name="keys.tasks.rotation_reminders", ignore_result=True)
def rotation_reminders() -> None:
    """Daily: end expired grace periods, then send the rotation reminders due today."""
    provider_keys_expire_grace()
    provider_key_reminders_send()
