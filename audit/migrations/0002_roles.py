"""The four roles of DESIGN.md §1 as groups; reading the audit trail is part of every oversight role."""

from typing import Any

from django.db import migrations

from audit.roles import Role, grant_permissions


def create_roles(apps: Any, schema_editor: Any) -> None:
    group_model = apps.get_model("auth", "Group")
    for role in Role:
        group_model.objects.get_or_create(name=role.value)
    grant_permissions(
        apps,
        {
            Role.AUDITORS: ["audit.view_auditevent"],
            Role.PROMPT_APPROVERS: ["audit.view_auditevent"],
            Role.KEY_CUSTODIANS: ["audit.view_auditevent"],
        },
    )


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_roles, migrations.RunPython.noop)]
