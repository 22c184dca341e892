from __future__ import annotations

from django.apps import AppConfig


class CoreConfig(AppConfig):
    """The bottom layer: errors and their codes, governance, environments, request context, roles, admin
    mixins, the metrics registry and notifications. It imports no other Tollgate app."""

    name = "core"
    verbose_name = "Core"
