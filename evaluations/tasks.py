"""Celery tasks of evaluations: thin wrappers around services (names kept from when evaluations lived in
the prompts app, so messages queued before an upgrade still find them)."""

from __future__ import annotations

from celery import shared_task

from evaluations.runner import evaluation_execute
from evaluations.services import EVALUATION_RUN_TASK, evaluations_schedule


@shared_task(name=EVALUATION_RUN_TASK, ignore_result=True, acks_late=True)
def evaluation_run(run_id: int) -> None:
    evaluation_execute(run_id)


@shared_task(name="prompts.tasks.evaluations_weekly", ignore_result=True)
def evaluations_weekly() -> None:
    evaluations_schedule()
