"""Series of evaluations for GET /metrics."""

from __future__ import annotations

from core.environments import Environment
from core.metrics import Family
from evaluations.choices import EvaluationStatus
from evaluations.models import EvaluationRun
from prompts.models import Release


def evaluation_families() -> list[Family]:
    rate = Family(
        "tollgate_evaluation_pass_rate",
        "Pass rate (0 to 1) of the latest finished evaluation of each version live in production.",
        "gauge",
    )
    live = Release.objects.filter(environment=Environment.PRODUCTION).select_related("prompt", "version")
    for release in live:
        latest = (
            EvaluationRun.objects.filter(
                version=release.version, status__in=[EvaluationStatus.PASSED, EvaluationStatus.FAILED]
            )
            .only("pass_rate")
            .first()
        )
        if latest is not None and latest.pass_rate is not None:
            rate.add({"prompt": release.prompt.slug, "version": str(release.version.number)}, latest.pass_rate)
    return [rate]
