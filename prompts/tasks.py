"""Celery tasks of the prompts app: thin wrappers around services."""

from __future__ import annotations

from celery import shared_task

from prompts.services import request_bodies_purge as purge


@shared_task(name="prompts.tasks.request_bodies_purge", ignore_result=True)
def request_bodies_purge() -> None:
    purge()
