from __future__ import annotations

from django.apps import AppConfig


class IdentityConfig(AppConfig):
    name = "identity"
    verbose_name = "Identity and access"

    def ready(self) -> None:
        # Connect the receivers that guard grants of access, those that audit failed sign-ins, and those
        # that end the sessions of people who lose access; register the checks of single sign-on's settings
        # and the tasks the beat queues by name.
        from identity import (  # noqa: F401
            checks,
            guard,
            session_receivers,
            signin,
            tasks,
        )
