"""Quality drift: an evaluation whose pass rate fell below the same version's previous one raises a
monitor alert (the model's answers changed under the version)."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.utils import timezone

from evaluations.models import EvaluationRun
from usage.models import MonitorAlert
from usage.monitoring import monitor_alert_raise

logger = logging.getLogger(__name__)


def drift_check(run: EvaluationRun, rate: float) -> None:
    """A pass rate lower than the same version's previous run: the model's answers changed under it."""
    before = (
        EvaluationRun.objects.filter(version=run.version, finished_at__lt=run.finished_at, pass_rate__isnull=False)
        .order_by("-finished_at")
        .values_list("pass_rate", flat=True)
        .first()
    )
    if before is None or rate >= before:
        return
    day = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    subject = f"{run.version.prompt.slug} v{run.version.number}"
    monitor_alert_raise(
        kind=MonitorAlert.Kind.QUALITY_DRIFT,
        subject=subject,
        window_start=day - timedelta(days=day.weekday()),  # one alert per version and week
        value=rate,
        threshold=before,
        message=f"Evaluation pass rate of {subject} fell from {before:.0%} to {rate:.0%} "
        f"({run.cases_passed} of {run.cases_total} cases passed)",
    )
