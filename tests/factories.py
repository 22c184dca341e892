from __future__ import annotations

import json
from typing import Any

import factory
from django.contrib.auth.models import Group, User
from django.db import connection

from core.context import access_change
from core.roles import Role
from prompts.models import content_hash

PASSWORD = "correct-horse-battery-staple"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@example.com")
    is_staff = True
    password = factory.django.Password(PASSWORD)

    @classmethod
    def _create(cls, model_class: type[User], *args: Any, **kwargs: Any) -> User:
        # Personas are set up directly; the four-eyes rule on grants has its own tests (tests/identity).
        with access_change(actor_repr="test-factory"):
            return super()._create(model_class, *args, **kwargs)

    @factory.post_generation
    def roles(self: User, create: bool, extracted: list[Role] | None, **kwargs: Any) -> None:
        with access_change(actor_repr="test-factory"):
            for role in extracted or []:
                self.groups.add(Group.objects.get(name=role.value))


def version_content(**overrides: Any) -> dict[str, Any]:
    """A valid version's content: a support-ticket summary with a sensitive e-mail variable."""
    content: dict[str, Any] = {
        "system_prompt": "You summarise customer support tickets for the support team. Be brief and factual.",
        "user_template": "Summarise this ticket:\n{{ ticket }}\nCustomer: {{ customer_email }}",
        "variables": [
            {"name": "ticket", "type": "string", "required": True, "max_length": 5000},
            {"name": "customer_email", "type": "string", "required": True, "max_length": 200, "sensitive": True},
        ],
        "model": "claude-sonnet-4-6",
        "max_tokens": 400,
        "stop_sequences": [],
        "cache_ttl": "5m",
        "routing": {"rules": [{"max_input_tokens": 500, "model": "claude-haiku-4-5"}]},
        "output_checks": {"max_length": 2000},
        "redaction": {},
    }
    content.update(overrides)
    return content


# An output-checks setting the checks before the specs accepted (a valid draft 2020-12 schema whose $ref
# points nowhere) and the spec refuses.
DANGLING_CHECKS = {"json_schema": {"type": "object", "properties": {"a": {"$ref": "#/$defs/missing"}}}}


def setting_store_unchecked(version: Any, field: str, value: Any) -> None:
    """Write one of a version's settings as it may have been stored before its spec was strict: past the
    registry's checks, with a content hash that matches (not tampering)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE prompts_promptversion SET {field} = %s, content_hash = %s WHERE id = %s",  # noqa: S608
            [json.dumps(value), content_hash({**version.content(), field: value}), version.pk],
        )
