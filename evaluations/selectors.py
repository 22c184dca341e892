"""Reads of evaluations: a version's latest run, and the one that preceded its approval."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from django.db.models import OuterRef, Subquery

from evaluations.choices import EvaluationStatus
from evaluations.models import EvaluationRun
from prompts.models import PromptVersion

logger = logging.getLogger(__name__)


def latest_evaluation(version: PromptVersion) -> EvaluationRun | None:
    return version.evaluation_runs.select_related("requested_by").first()


def latest_evaluations(versions: Sequence[PromptVersion]) -> dict[int, EvaluationRun]:
    """Version pk → its latest run (as `latest_evaluation` picks it), for many versions in one query."""
    latest = EvaluationRun.objects.filter(version=OuterRef("version")).order_by("-created_at", "-pk").values("pk")[:1]
    runs = EvaluationRun.objects.filter(version__in=[version.pk for version in versions], pk=Subquery(latest))
    return {run.version_id: run for run in runs.select_related("requested_by")}


def approval_refusal(version: PromptVersion) -> str | None:
    """Why the version may not be approved yet: its content's latest finished evaluation failed, or there is
    none. None when it passed."""
    latest = version.evaluation_runs.filter(
        content_hash=version.content_hash, status__in=[EvaluationStatus.PASSED, EvaluationStatus.FAILED]
    ).first()
    if latest is None:
        return "it has no finished evaluation"
    return None if latest.status == EvaluationStatus.PASSED else "its latest evaluation failed"


def evaluation_before_approval(version: PromptVersion) -> EvaluationRun | None:
    """The last finished evaluation of the version's content before it was approved."""
    if version.reviewed_at is None:
        return None
    return (
        EvaluationRun.objects.filter(
            version=version,
            content_hash=version.content_hash,
            status__in=[EvaluationStatus.PASSED, EvaluationStatus.FAILED],
            finished_at__lte=version.reviewed_at,
        )
        .order_by("-finished_at")
        .first()
    )
