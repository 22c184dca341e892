from __future__ import annotations

from django.apps import AppConfig


class KeysConfig(AppConfig):
    name = "keys"
    verbose_name = "Keys and API clients"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from core.hotcache import rows_changed
        from keys.models import ApiClient, ApiToken, ProviderKey

        for model in (ApiClient, ApiToken, ProviderKey):  # the hot cache's rows (docs/contract.md §12)
            post_save.connect(rows_changed, sender=model, dispatch_uid=f"hotcache-save-{model._meta.label}")
            post_delete.connect(rows_changed, sender=model, dispatch_uid=f"hotcache-delete-{model._meta.label}")

        from core import metrics
        from keys import tasks  # noqa: F401  (registers its tasks: services and the beat queue them by name)
        from keys.evidence import register_all
        from keys.metrics import spend_families

        register_all()
        metrics.register(spend_families)
