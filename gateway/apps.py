from __future__ import annotations

from django.apps import AppConfig


class GatewayConfig(AppConfig):
    name = "gateway"
    verbose_name = "Gateway"

    def ready(self) -> None:
        from core import metrics
        from gateway import tasks  # noqa: F401  (registers its tasks: services and the beat queue them by name)
        from gateway.metrics import queue_families

        metrics.register(queue_families)
