"""Queueing a task by its registered name.

A service that starts background work names the task instead of importing its task module: task modules
import services (they are thin wrappers around them), so the reverse import would be a circle. Task names
are part of the wire contract — messages queued before an upgrade must still find their task — so each
is a constant beside the service it runs, used by the `@shared_task(name=...)` and by the callers here.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

from celery import current_app
from django.db import transaction
from kombu.exceptions import OperationalError

logger = logging.getLogger(__name__)

# What a publish raises when the broker does not answer.
BrokerUnreachable = OperationalError


def task_enqueue(name: str, *args: Any) -> None:
    """Queue the task `name` now. In-process (CELERY_TASK_ALWAYS_EAGER: the embedded default) it runs here.
    A broker that does not answer (after CELERY_TASK_PUBLISH_RETRY_POLICY's retries) raises
    `BrokerUnreachable`."""
    current_app.tasks[name].delay(*args)


def task_enqueue_on_commit(name: str, *args: Any, swept: bool = False) -> None:
    """Queue the task `name` once the current transaction commits (never for work that rolled back).

    `swept`: the work is a row that a beat sweeper queues again when no worker took it up in time (a job,
    a batch to send, a webhook attempt: gateway.tasks.redispatch). A broker that cannot take the message
    then only delays the work: the failure is logged and the request that committed the row still succeeds.
    """
    transaction.on_commit(partial(_enqueue_or_leave if swept else task_enqueue, name, *args))


def _enqueue_or_leave(name: str, *args: Any) -> None:
    try:
        task_enqueue(name, *args)
    except BrokerUnreachable as exc:
        logger.warning("%s%s not queued (%s): the sweeper will queue it", name, args, exc)
