from __future__ import annotations

from django.apps import AppConfig


class KeysConfig(AppConfig):
    name = "keys"
    verbose_name = "Keys and API clients"

    def ready(self) -> None:
        from core import metrics
        from keys import tasks  # noqa: F401  (registers its tasks: services and the beat queue them by name)
        from keys.evidence import register_all
        from keys.metrics import spend_families

        register_all()
        metrics.register(spend_families)
