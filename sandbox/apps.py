from __future__ import annotations

from django.apps import AppConfig


class SandboxConfig(AppConfig):
    """The local stand-in for api.anthropic.com; it has no models and never touches the database."""

    name = "sandbox"
    verbose_name = "Anthropic sandbox"
