"""The four roles of docs/contract.md §1 as groups. Their permissions: core.roles.ROLE_PERMISSIONS."""

from typing import Any

from django.db import migrations

ROLES = ["Prompt authors", "Prompt approvers", "Key custodians", "Auditors"]


def create_roles(apps: Any, schema_editor: Any) -> None:
    group_model = apps.get_model("auth", "Group")
    for name in ROLES:
        group_model.objects.using(schema_editor.connection.alias).get_or_create(name=name)


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [migrations.RunPython(create_roles, migrations.RunPython.noop)]
