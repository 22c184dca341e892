"""The Celery application; its settings are the CELERY_* names in Django settings.

A task carries the request id of the request (or task) that queued it, in the message header
`tollgate_request_id`, and runs bound to it: its log lines and audit events name the caller's request.
"""

from __future__ import annotations

import os
from contextlib import ExitStack
from typing import Any

from celery import Celery, Task
from celery.signals import before_task_publish, task_postrun, task_prerun

from core.context import RequestContext, bound, current_request_id

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")

app = Celery("tollgate")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

REQUEST_ID_HEADER = "tollgate_request_id"


@before_task_publish.connect
def _carry_request_id(headers: dict[str, Any] | None = None, **_: Any) -> None:
    request_id = current_request_id()
    if request_id and headers is not None:
        headers.setdefault(REQUEST_ID_HEADER, request_id)


@task_prerun.connect
def _bind_request_id(task: Task | None = None, **_: Any) -> None:  # type: ignore[type-arg]
    request_id = getattr(task.request, REQUEST_ID_HEADER, None) if task is not None else None
    if task is None or not request_id or task.request.is_eager:
        return  # in-process tasks already run in the caller's context
    stack = ExitStack()
    stack.enter_context(bound(RequestContext(request_id=request_id, actor_repr="system")))
    task.request.tollgate_context = stack  # type: ignore[attr-defined]


@task_postrun.connect
def _unbind_request_id(task: Task | None = None, **_: Any) -> None:  # type: ignore[type-arg]
    stack = getattr(task.request, "tollgate_context", None) if task is not None else None
    if stack is not None:
        stack.close()
