from __future__ import annotations

from django.apps import AppConfig


class PromptsConfig(AppConfig):
    name = "prompts"
    verbose_name = "Prompts"

    def ready(self) -> None:
        from config import metrics
        from prompts.evidence import register_all
        from prompts.metrics import evaluation_families, queue_families, spend_families

        register_all()
        metrics.register(spend_families)
        metrics.register(queue_families)
        metrics.register(evaluation_families)
