from __future__ import annotations

from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "audit"
    verbose_name = "Audit trail"

    def ready(self) -> None:
        from audit import (
            receivers,  # noqa: F401  (connects the login and logout receivers)
            tasks,  # noqa: F401  (registers its tasks: services and the beat queue them by name)
        )
