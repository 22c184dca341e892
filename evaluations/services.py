"""Evaluation suites: fixed cases per prompt, run against a version to see whether its answers are still
good.

A case gives variables and expectations on the answer: `contains` (text), `regex` (a pattern searched
for), `json_schema` (the answer parses as JSON and validates), `similar_to` (word-sequence similarity to
a reference answer, 0 to 1, at least `threshold`, 0.8 unless given). A run goes through the same pipeline
as an API call — redaction, routing, caching, spend caps, a ledger row per call (endpoint `evaluation`)
— on the provider key of TOLLGATE_EVALUATION_ENVIRONMENT, and stores each case's result. It passes when
its pass rate reaches TOLLGATE_EVALUATION_MIN_PASS_RATE. Each week every version live in production is
evaluated again; a run whose pass rate is lower than the version's previous one raises a quality-drift
alert (usage.monitoring). With TOLLGATE_APPROVAL_REQUIRES_EVALUATION, a version is approved only after a
passing evaluation of its content (prompts.services).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction

from audit.services import audit_event_record
from core.environments import Environment
from core.errors import IllegalTransition, InvalidEvaluationCase, NoEvaluationCases
from core.governance import require_permission, require_reason, save_with_history
from core.tasks import task_enqueue_on_commit
from evaluations.choices import EvaluationStatus, EvaluationTrigger
from evaluations.models import EvaluationCase, EvaluationRun
from evaluations.selectors import approval_refusal, evaluation_before_approval, latest_evaluation, latest_evaluations
from gateway.checks import DEFAULT_SIMILARITY
from prompts.choices import VersionStatus
from prompts.models import PromptVersion, Release
from prompts.specs import json_schema_problem

logger = logging.getLogger(__name__)

EVALUATION_RUN_TASK = "prompts.tasks.evaluation_run"
KINDS = ("contains", "regex", "json_schema", "similar_to")
EVALUABLE = (VersionStatus.IN_REVIEW, VersionStatus.APPROVED)


# --- expectations -------------------------------------------------------------------------------------------


def expectations_errors(expectations: Any) -> list[str]:
    """What is wrong with a case's expectations, one sentence each (empty: valid)."""
    if not isinstance(expectations, list) or not expectations:
        return ["Give a list of at least one expectation."]
    errors = []
    for number, expectation in enumerate(expectations, 1):
        kinds = [kind for kind in KINDS if kind in expectation] if isinstance(expectation, dict) else []
        if len(kinds) != 1:
            errors.append(f"Expectation {number}: an object with exactly one of {', '.join(KINDS)}.")
            continue
        kind, value = kinds[0], expectation[kinds[0]]
        extra = set(expectation) - {kind, *(["threshold"] if kind == "similar_to" else [])}
        if extra:
            errors.append(f"Expectation {number}: unknown field(s) {', '.join(sorted(extra))}.")
        if kind in ("contains", "similar_to", "regex") and (not isinstance(value, str) or not value):
            errors.append(f"Expectation {number}: {kind} needs non-empty text.")
        elif kind == "regex":
            try:
                re.compile(value)
            except re.error as exc:
                errors.append(f"Expectation {number}: the pattern does not compile ({exc}).")
        elif kind == "json_schema" and (problem := json_schema_problem(value)):
            errors.append(f"Expectation {number}: {problem}.")
        threshold = expectation.get("threshold", DEFAULT_SIMILARITY)
        if kind == "similar_to" and (isinstance(threshold, bool) or not isinstance(threshold, int | float)
                                     or not 0 < threshold <= 1):  # fmt: skip
            errors.append(f"Expectation {number}: threshold is a number above 0 and at most 1.")
    return errors


# --- cases ----------------------------------------------------------------------------------------------------

CASE_FIELDS = ("name", "variables", "expectations", "active")


def _fingerprint(value: Any) -> str:
    """Cases may hold personal data as test input: the audit trail records a hash of it, not the data."""
    return "sha256:" + hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]


def evaluation_case_save(*, actor: User, case: EvaluationCase, reason: str) -> EvaluationCase:
    """Add or change a case, with history and an audit event."""
    created = case.pk is None
    require_permission(
        actor,
        "evaluations.add_evaluationcase" if created else "evaluations.change_evaluationcase",
        "edit evaluation cases",
    )
    reason = require_reason(reason, "change an evaluation suite")
    errors: dict[str, list[str]] = {}
    if not isinstance(case.variables, dict):
        errors["variables"] = ["Give the variables as a JSON object."]
    if problems := expectations_errors(case.expectations):
        errors["expectations"] = problems
    if errors:
        raise InvalidEvaluationCase(errors)
    with transaction.atomic():
        before = {} if created else EvaluationCase.objects.values(*CASE_FIELDS).get(pk=case.pk)
        if created:
            case.created_by = actor
        save_with_history(case, actor=actor, reason=reason)
        after = {field: getattr(case, field) for field in CASE_FIELDS}
        shown = {"variables": _fingerprint, "expectations": _fingerprint}
        audit_event_record(
            action="evaluation_case.create" if created else "evaluation_case.update",
            actor=actor,
            target=case,
            changes={
                field: [shown.get(field, str)(before[field]) if before else None, shown.get(field, str)(value)]
                for field, value in after.items()
                if created or before[field] != value
            },
            reason=reason,
        )
    return case


# --- runs -----------------------------------------------------------------------------------------------------


def evaluation_start(
    *, actor: User | None, version: PromptVersion, trigger: str = EvaluationTrigger.MANUAL
) -> EvaluationRun:
    """Queue an evaluation of a submitted version against its prompt's active cases (a job)."""
    if actor is not None:
        require_permission(actor, "evaluations.add_evaluationrun", "run evaluations")
    version = PromptVersion.objects.select_related("prompt").get(pk=version.pk)  # its status now
    if version.status not in EVALUABLE:
        raise IllegalTransition(f"{version} is {version.get_status_display().lower()}; only a version in review "
                                "or approved (its content frozen) is evaluated.")  # fmt: skip
    if not version.prompt.evaluation_cases.filter(active=True).exists():
        raise NoEvaluationCases(f"'{version.prompt.slug}' has no active evaluation cases; add some first.")
    with transaction.atomic():
        run = EvaluationRun.objects.create(
            version=version,
            content_hash=version.content_hash,
            trigger=trigger,
            requested_by=actor,
            environment=settings.TOLLGATE_EVALUATION_ENVIRONMENT,
        )
        task_enqueue_on_commit(EVALUATION_RUN_TASK, run.pk)
    return run


def evaluations_schedule() -> list[EvaluationRun]:
    """The weekly evaluation: every version live in production whose prompt has active cases."""
    started = []
    releases = Release.objects.filter(
        environment=Environment.PRODUCTION,
        prompt_id__in=EvaluationCase.objects.filter(active=True).values("prompt_id"),
    ).select_related("version__prompt")
    for release in releases:
        version = release.version
        if version.evaluation_runs.filter(status__in=[EvaluationStatus.QUEUED, EvaluationStatus.RUNNING]).exists():
            continue
        started.append(evaluation_start(actor=None, version=version, trigger=EvaluationTrigger.SCHEDULED))
    return started


class VersionEvaluations:
    """What the prompt registry asks of evaluations (prompts.hooks), registered in EvaluationsConfig.ready."""

    evaluable = frozenset(str(status) for status in EVALUABLE)
    permission = "evaluations.add_evaluationrun"

    def start(self, *, actor: User, version: PromptVersion) -> EvaluationRun:
        return evaluation_start(actor=actor, version=version)

    def latest(self, version: PromptVersion) -> EvaluationRun | None:
        return latest_evaluation(version)

    def latest_of(self, versions: Sequence[PromptVersion]) -> dict[int, EvaluationRun]:
        return latest_evaluations(versions)

    def approval_refusal(self, version: PromptVersion) -> str | None:
        return approval_refusal(version)

    def before_approval(self, version: PromptVersion) -> EvaluationRun | None:
        return evaluation_before_approval(version)
