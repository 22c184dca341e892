"""The four roles of docs/contract.md §1, as Django groups, and the permissions each role holds.

The groups are created by a data migration (audit 0002). Their permissions are declared here, in
code, and applied after every `migrate` (and after a test flush) by `roles_sync`: permissions only
exist once all migrations ran, and a grant is a code change that goes through review like any other.
Grants are additive: a permission an administrator added by hand is left alone.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps as global_apps
from django.db import DEFAULT_DB_ALIAS, models

from core.context import access_change


class Role(models.TextChoices):
    PROMPT_AUTHORS = "Prompt authors"
    PROMPT_APPROVERS = "Prompt approvers"
    KEY_CUSTODIANS = "Key custodians"
    AUDITORS = "Auditors"


_READ_PROMPTS = (
    "prompts.view_prompt",
    "prompts.view_promptversion",
    "prompts.view_release",
    "evaluations.view_evaluationcase",
    "evaluations.view_evaluationrun",
)
# The request log (redacted bodies, for incident investigation) and the queue.
_READ_RUNS = ("gateway.view_run", "gateway.view_job", "gateway.view_batch", "gateway.view_webhookdelivery")
# The inventory of system prompts seen on free-form calls (redacted texts, who sends them, their spend):
# read where the request log is read, and by authors, who register them as governed prompts.
_READ_DISCOVERED = ("gateway.view_discoveredprompt",)
_READ_KEYS = ("keys.view_providerkey", "keys.view_apiclient", "keys.view_apitoken")
_READ_USAGE = ("usage.view_price", "usage.view_usagerecord", "usage.view_budgetalert", "usage.view_monitoralert")

# "app_label.codename" per role. Reading the audit trail is part of every oversight role. Authors
# write, try (the playground, on the development key) and submit (and register discovered prompts as
# drafts); approvers review, release and retire but never edit content; custodians manage keys, API
# clients and the price book; approvers and custodians watch spend and acknowledge budget alerts;
# auditors only read (key metadata included, never a secret).
ROLE_PERMISSIONS: dict[Role, tuple[str, ...]] = {
    Role.PROMPT_AUTHORS: (
        *_READ_PROMPTS,
        *_READ_DISCOVERED,
        "usage.view_price",
        "prompts.add_prompt",
        "prompts.change_prompt",
        "prompts.add_promptversion",
        "prompts.change_promptversion",
        "prompts.submit_promptversion",
        "prompts.try_promptversion",
        "evaluations.add_evaluationcase",
        "evaluations.change_evaluationcase",
        "evaluations.add_evaluationrun",
    ),
    Role.PROMPT_APPROVERS: (
        *_READ_PROMPTS,
        "prompts.review_promptversion",
        "prompts.release_promptversion",
        "prompts.retire_promptversion",
        "evaluations.add_evaluationrun",
        *_READ_RUNS,
        *_READ_DISCOVERED,
        *_READ_USAGE,
        "usage.change_budgetalert",
        "usage.change_monitoralert",
        "audit.view_auditevent",
    ),
    Role.KEY_CUSTODIANS: (
        "keys.view_providerkey",
        "keys.add_providerkey",
        "keys.change_providerkey",
        "keys.view_apiclient",
        "keys.add_apiclient",
        "keys.change_apiclient",
        "keys.view_apitoken",
        "keys.add_apitoken",
        "keys.change_apitoken",
        *_READ_USAGE,
        "usage.add_price",
        "usage.change_price",
        "usage.change_budgetalert",
        "usage.change_monitoralert",
        "audit.view_auditevent",
    ),
    Role.AUDITORS: (
        *_READ_PROMPTS,
        *_READ_RUNS,
        *_READ_DISCOVERED,
        *_READ_KEYS,
        *_READ_USAGE,
        "audit.view_auditevent",
        "audit.export_evidence",
    ),
}


def roles_sync(*, apps: Any = global_apps, using: str = DEFAULT_DB_ALIAS) -> None:
    """Make sure every role exists and holds the permissions declared for it."""
    group_model = apps.get_model("auth", "Group")
    permission_model = apps.get_model("auth", "Permission")
    with access_change(actor_repr="roles_sync"):  # the grants are declared in code and reviewed there
        _roles_grant(group_model=group_model, permission_model=permission_model, using=using)


def _roles_grant(*, group_model: Any, permission_model: Any, using: str) -> None:
    for role, names in ROLE_PERMISSIONS.items():
        group, _ = group_model.objects.using(using).get_or_create(name=role.value)
        for name in names:
            app_label, codename = name.split(".")
            permission = (
                permission_model.objects.using(using)
                .filter(content_type__app_label=app_label, codename=codename)
                .first()
            )
            if permission is not None:  # not yet created: a later post_migrate (for its app) grants it
                group.permissions.add(permission)
