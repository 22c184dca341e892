"""Running an evaluation: every active case of the prompt through the gateway's pipeline (with the
evaluation environment's key and caps), each answer checked against the case's expectations."""

from __future__ import annotations

import logging
import secrets
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core.errors import DomainError
from evaluations.choices import EvaluationStatus
from evaluations.drift import drift_check
from evaluations.models import EvaluationCase, EvaluationRun
from gateway.checks import expectation_failures
from gateway.pipeline import run_execute, run_prepare, version_intake
from prompts.services import prompt_version_verify
from usage.choices import Endpoint

logger = logging.getLogger(__name__)

OUTPUT_KEPT = 2000  # characters of each answer kept with the result


def _claim(run_id: int) -> EvaluationRun | None:
    """The run, marked running; None when it has finished already (a redelivered task)."""
    with transaction.atomic():
        run = EvaluationRun.objects.select_for_update(of=("self",)).select_related("version__prompt").get(pk=run_id)
        if run.done:
            return None
        run.status, run.started_at = EvaluationStatus.RUNNING, timezone.now()
        run.save(update_fields=["status", "started_at"])
    return run


def _case_result(run: EvaluationRun, case: EvaluationCase) -> dict[str, Any]:
    result: dict[str, Any] = {"case": case.pk, "name": case.name}
    try:
        intake = version_intake(
            run.version, case.variables, environment=run.environment, verified=True
        )  # verified when the run began
        prepared = run_prepare(
            client=None,
            environment=run.environment,
            slug=run.version.prompt.slug,
            variables=case.variables,
            metadata={"feature": "evaluation"},
            endpoint=Endpoint.EVALUATION,
            request_id=f"eval-{run.pk}-{case.pk}-{secrets.token_hex(4)}",
            intake=intake,
        )
        answer = str(run_execute(prepared)["output"])
    except DomainError as exc:  # invalid variables, a refused cap, an upstream failure: the case fails
        return {**result, "passed": False, "failures": [exc.detail], "error": exc.code, "output": ""}
    failures = expectation_failures(case.expectations, answer)
    output = intake.redaction.conceal(answer)[:OUTPUT_KEPT]
    return {**result, "passed": not failures, "failures": failures, "error": "", "output": output}


def evaluation_execute(run_id: int) -> EvaluationRun | None:
    """Run every active case, store the results, and raise a drift alert if the pass rate dropped."""
    run = _claim(run_id)
    if run is None:
        return None
    cases = list(run.version.prompt.evaluation_cases.filter(active=True).order_by("name"))
    try:
        run.version = prompt_version_verify(version=run.version, fresh=True)
        run.results = [_case_result(run, case) for case in cases]
    except DomainError as exc:  # the version failed its integrity check
        run.error, run.results = exc.detail[:300], []
    except Exception:  # a run must end: never left "running" by a fault of ours
        logger.exception("Evaluation run %s stopped on an unexpected error", run.pk)
        run.error, run.results = "The evaluation stopped on an unexpected error; the logs have the details.", []
    run.cases_total = len(run.results)
    run.cases_passed = sum(1 for result in run.results if result["passed"])
    rate = run.cases_passed / run.cases_total if run.cases_total else 0.0
    run.pass_rate = rate
    passed = not run.error and rate >= settings.TOLLGATE_EVALUATION_MIN_PASS_RATE
    run.status = EvaluationStatus.PASSED if passed else EvaluationStatus.FAILED
    run.finished_at = timezone.now()
    run.save(update_fields=["results", "error", "cases_total", "cases_passed", "pass_rate", "status",
                            "finished_at"])  # fmt: skip
    drift_check(run, rate)
    return run
