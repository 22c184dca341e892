"""Celery tasks of the prompts app: thin wrappers around services.

A step that must wait (upstream budget, backoff) schedules its next message with a countdown; when tasks
run in-process (no broker: the embedded default), it waits in place instead, at most a second a time.
"""

from __future__ import annotations

import time

from celery import Task, shared_task

from prompts.evaluations import evaluation_execute, evaluations_schedule
from prompts.runtime.batches import batch_submit_chunks
from prompts.runtime.batches import batches_poll as poll
from prompts.runtime.jobs import job_execute
from prompts.runtime.webhooks import webhook_attempt
from prompts.services import request_bodies_purge as purge

EAGER_MAX_WAIT = 1.0


@shared_task(name="prompts.tasks.request_bodies_purge", ignore_result=True)
def request_bodies_purge() -> None:
    purge()


@shared_task(bind=True, name="prompts.tasks.job_run", ignore_result=True, acks_late=True)
def job_run(self: Task, job_id: int) -> None:  # type: ignore[type-arg]
    delay = job_execute(job_id)
    if delay is not None and not self.request.is_eager:
        job_run.apply_async((job_id,), countdown=delay)
        return
    while delay is not None:
        time.sleep(min(delay, EAGER_MAX_WAIT))
        delay = job_execute(job_id)


@shared_task(bind=True, name="prompts.tasks.webhook_deliver", ignore_result=True, acks_late=True)
def webhook_deliver(self: Task, kind: str, pk: int, attempt: int) -> None:  # type: ignore[type-arg]
    delay = webhook_attempt(kind, pk, attempt)
    if delay is not None and not self.request.is_eager:
        webhook_deliver.apply_async((kind, pk, attempt + 1), countdown=delay)
        return
    while delay is not None:
        time.sleep(min(delay, EAGER_MAX_WAIT))
        attempt += 1
        delay = webhook_attempt(kind, pk, attempt)


@shared_task(name="prompts.tasks.batch_submit", ignore_result=True, acks_late=True)
def batch_submit(batch_id: int) -> None:
    batch_submit_chunks(batch_id)


@shared_task(name="prompts.tasks.batches_poll", ignore_result=True)
def batches_poll() -> None:
    poll()


@shared_task(name="prompts.tasks.evaluation_run", ignore_result=True, acks_late=True)
def evaluation_run(run_id: int) -> None:
    evaluation_execute(run_id)


@shared_task(name="prompts.tasks.evaluations_weekly", ignore_result=True)
def evaluations_weekly() -> None:
    evaluations_schedule()
