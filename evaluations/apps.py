from __future__ import annotations

from django.apps import AppConfig


class EvaluationsConfig(AppConfig):
    name = "evaluations"
    verbose_name = "Evaluations"

    def ready(self) -> None:
        from core import metrics
        from evaluations import tasks  # noqa: F401  (registers its tasks: services and the beat queue them by name)
        from evaluations.costs import VersionCosts
        from evaluations.metrics import evaluation_families
        from evaluations.services import VersionEvaluations
        from prompts.hooks import costs_register, evaluations_register

        evaluations_register(VersionEvaluations())
        costs_register(VersionCosts())
        metrics.register(evaluation_families)
