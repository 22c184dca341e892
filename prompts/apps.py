from __future__ import annotations

from django.apps import AppConfig


class PromptsConfig(AppConfig):
    name = "prompts"
    verbose_name = "Prompts"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from core.hotcache import rows_changed
        from prompts.models import Prompt, PromptVersion, Release

        for model in (Prompt, PromptVersion, Release):  # the hot cache's rows (docs/contract.md §12)
            post_save.connect(rows_changed, sender=model, dispatch_uid=f"hotcache-save-{model._meta.label}")
            post_delete.connect(rows_changed, sender=model, dispatch_uid=f"hotcache-delete-{model._meta.label}")

        from prompts.evidence import register_all

        register_all()
