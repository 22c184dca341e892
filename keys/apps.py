from __future__ import annotations

from django.apps import AppConfig


class KeysConfig(AppConfig):
    name = "keys"
    verbose_name = "Keys and API clients"

    def ready(self) -> None:
        from keys.evidence import register_all

        register_all()
