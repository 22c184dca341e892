"""The demo data of `manage.py seed_demo`: one user per role, and (as later parts arrive) prompts,
sandbox keys and API clients. Idempotent: what exists is left as it is."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import Group, User
from django.db import transaction

from audit.roles import Role
from audit.services import audit_event_record

DEMO_PASSWORD = "tollgate-demo"  # noqa: S105  (demo accounts only; seed_demo refuses without DEBUG)


@dataclass(frozen=True)
class DemoLogin:
    username: str
    role: str
    created: bool


DEMO_USERS: list[tuple[str, Role | None]] = [
    ("admin", None),
    ("author", Role.PROMPT_AUTHORS),
    ("approver", Role.PROMPT_APPROVERS),
    ("custodian", Role.KEY_CUSTODIANS),
    ("auditor", Role.AUDITORS),
]


@transaction.atomic
def demo_users_seed() -> list[DemoLogin]:
    logins: list[DemoLogin] = []
    for username, role in DEMO_USERS:
        user, created = User.objects.get_or_create(
            username=username,
            defaults={"email": f"{username}@demo.tollgate.local", "is_staff": True, "is_superuser": role is None},
        )
        if created:
            user.set_password(DEMO_PASSWORD)
            user.save(update_fields=["password"])
            if role is not None:
                user.groups.add(Group.objects.get(name=role.value))
            audit_event_record(
                action="user.create",
                actor_repr="seed_demo",
                target=user,
                changes={"username": username, "role": role.value if role else "superuser"},
                reason="demo data",
            )
        logins.append(DemoLogin(username=username, role=role.value if role else "Superuser", created=created))
    return logins
