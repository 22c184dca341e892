"""Queueing a task by its registered name.

A service that starts background work names the task instead of importing its task module: task modules
import services (they are thin wrappers around them), so the reverse import would be a circle. Task names
are part of the wire contract — messages queued before an upgrade must still find their task — so each
is a constant beside the service it runs, used by the `@shared_task(name=...)` and by the callers here.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from celery import current_app
from django.db import transaction


def task_enqueue(name: str, *args: Any) -> None:
    """Queue the task `name` now. In-process (the embedded default, CELERY_TASK_ALWAYS_EAGER) it runs here."""
    current_app.tasks[name].delay(*args)


def task_enqueue_on_commit(name: str, *args: Any) -> None:
    """Queue the task `name` once the current transaction commits (never for work that rolled back)."""
    transaction.on_commit(partial(task_enqueue, name, *args))
