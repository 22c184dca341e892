from __future__ import annotations

from django.apps import AppConfig


class UsageConfig(AppConfig):
    name = "usage"
    verbose_name = "Usage and spend"

    def ready(self) -> None:
        from core import metrics
        from usage import (
            checks,  # noqa: F401  (registers the ledger's database checks)
            receivers,  # noqa: F401  (keeps the price book seeded)
            tasks,  # noqa: F401  (registers its tasks: services and the beat queue them by name)
        )
        from usage.evidence import register_all
        from usage.metrics import ledger_families

        register_all()
        metrics.register(ledger_families)
