"""The four roles of DESIGN.md §1, as Django groups. Each issue grants its permissions by data migration."""

from __future__ import annotations

from typing import Any

from django.db import models


class Role(models.TextChoices):
    PROMPT_AUTHORS = "Prompt authors"
    PROMPT_APPROVERS = "Prompt approvers"
    KEY_CUSTODIANS = "Key custodians"
    AUDITORS = "Auditors"


def grant_permissions(apps: Any, grants: dict[str, list[str]]) -> None:
    """For data migrations: give each role the named permissions ("app_label.codename").

    Permissions are normally created after all migrations ran; creating them here lets a migration
    grant permissions for models that a fresh database has only just got.
    """
    from django.contrib.auth.management import create_permissions

    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    group_model = apps.get_model("auth", "Group")
    permission_model = apps.get_model("auth", "Permission")
    for role, names in grants.items():
        group, _ = group_model.objects.get_or_create(name=role)
        for name in names:
            app_label, codename = name.split(".")
            group.permissions.add(permission_model.objects.get(content_type__app_label=app_label, codename=codename))
