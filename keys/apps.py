from __future__ import annotations

from django.apps import AppConfig


class KeysConfig(AppConfig):
    name = "keys"
    verbose_name = "Keys and API clients"

    def ready(self) -> None:
        from core import metrics
        from keys.evidence import register_all
        from keys.metrics import spend_families

        register_all()
        metrics.register(spend_families)
