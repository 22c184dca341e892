from __future__ import annotations

from django.apps import AppConfig


class IdentityConfig(AppConfig):
    name = "identity"
    verbose_name = "Identity and access"

    def ready(self) -> None:
        # Connect the receivers that guard grants of access and those that audit failed sign-ins; register the checks.
        from identity import checks, guard, signin  # noqa: F401
