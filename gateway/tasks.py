"""Celery tasks of the gateway: thin wrappers around services. Their names are kept from before the gateway
had an app of its own (messages queued before an upgrade still find them).

A step that must wait (upstream budget, backoff) schedules its next message with a countdown; when tasks
run in-process (no broker: the embedded default), it waits in place instead, at most a second a time.
"""

from __future__ import annotations

import time

from celery import Task, shared_task

from gateway.batches import BATCH_SUBMIT_TASK, batch_submit_chunks, batches_redispatch
from gateway.batches import batches_poll as poll
from gateway.jobs import JOB_RUN_TASK, job_execute, jobs_redispatch
from gateway.services import request_bodies_purge as purge
from gateway.webhooks import WEBHOOK_DELIVER_TASK, webhook_attempt, webhooks_redispatch

EAGER_MAX_WAIT = 1.0


@shared_task(name="prompts.tasks.request_bodies_purge", ignore_result=True)
def request_bodies_purge() -> None:
    purge()


@shared_task(bind=True, name=JOB_RUN_TASK, ignore_result=True, acks_late=True)
def job_run(self: Task, job_id: int) -> None:  # type: ignore[type-arg]
    delay = job_execute(job_id)
    if delay is not None and not self.request.is_eager:
        job_run.apply_async((job_id,), countdown=delay)
        return
    while delay is not None:
        time.sleep(min(delay, EAGER_MAX_WAIT))
        delay = job_execute(job_id)


@shared_task(name="gateway.tasks.redispatch", ignore_result=True)
def redispatch() -> None:
    """Queue again the work whose message was lost (docs/queue.md, Lost messages)."""
    jobs_redispatch()
    batches_redispatch()
    webhooks_redispatch()


@shared_task(bind=True, name=WEBHOOK_DELIVER_TASK, ignore_result=True, acks_late=True)
def webhook_deliver(self: Task, kind: str, pk: int, attempt: int) -> None:  # type: ignore[type-arg]
    delay = webhook_attempt(kind, pk, attempt)
    if delay is not None and not self.request.is_eager:
        webhook_deliver.apply_async((kind, pk, attempt + 1), countdown=delay)
        return
    while delay is not None:
        time.sleep(min(delay, EAGER_MAX_WAIT))
        attempt += 1
        delay = webhook_attempt(kind, pk, attempt)


@shared_task(name=BATCH_SUBMIT_TASK, ignore_result=True, acks_late=True)
def batch_submit(batch_id: int) -> None:
    batch_submit_chunks(batch_id)


@shared_task(name="prompts.tasks.batches_poll", ignore_result=True)
def batches_poll() -> None:
    poll()
