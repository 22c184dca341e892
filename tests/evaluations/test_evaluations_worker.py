"""An evaluation run as a job by a real Celery worker on PostgreSQL and Redis."""

from __future__ import annotations

import pytest

from evaluations.models import EvaluationRun
from evaluations.services import evaluation_start
from tests.gateway.test_jobs_worker import wait_for
from usage.models import UsageRecord

pytestmark = [pytest.mark.celery_worker, pytest.mark.django_db(transaction=True)]


def test_a_worker_runs_the_evaluation_and_stores_each_case(suite, author, celery_worker):
    run = evaluation_start(actor=author, version=suite["version"])
    assert run.status == "queued"

    wait_for(lambda: EvaluationRun.objects.filter(pk=run.pk, status__in=["passed", "failed"]).exists())

    run.refresh_from_db()
    assert (run.status, run.cases_passed, run.cases_total) == ("failed", 1, 2)
    assert [result["name"] for result in run.results] == ["export button", "mentions a refund"]
    assert UsageRecord.objects.filter(endpoint="evaluation").count() == 2
