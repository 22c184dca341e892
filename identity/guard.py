"""Four-eyes on access itself, enforced at the model layer (docs/admin.md, Granting access).

One administrator alone must not be able to release a version: with a sock-puppet account holding a role,
or by setting the password of someone who holds one, they could author and approve on their own. So every
grant of access — a group (role) to a user, a permission to a user or to a group, superuser status — is
refused unless it runs inside `access_change()`, which only the approval of an access request by a second
administrator (identity.services), `roles_sync`, the `grant_access` bootstrap command and test factories
enter. Revoking is never refused. A password is set on a privileged account only by its holder (or inside
`access_change()`): an administrator removes the account's roles first.

The guard sits on signals rather than in the admin, so that the shell, a data migration or a future view
meet the same rule; the admin forms check first only to explain it kindly. What sends no signal — raw SQL,
or rows of the link tables written directly (Django sends no signals for auto-created models) — is beyond
it, as is anything else done with the database's own credentials on the host.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group, User
from django.db.models.signals import m2m_changed, pre_save
from django.dispatch import receiver

from core.context import access_change, access_change_actor, current
from core.errors import SecondAdministratorRequired
from core.roles import Role

__all__ = ["access_change", "access_change_actor"]

GRANT_RULE = (
    "Granting a role, a permission or superuser status needs a second administrator: file an access request, "
    "which another administrator (neither you nor the account holder) approves."
)
ROLE_NAME_RULE = "The groups of the roles keep their names: a role's permissions follow its name (audit/roles.py)."
HOLDER_ONLY_RULE = (
    "Only its holder sets the password of an account that holds a role, a permission or superuser status. "
    "Remove its roles first, or ask the person to change their own password."
)


def user_is_privileged(user: User) -> bool:
    """Whether the account (as stored) holds superuser status, a group or a permission of its own."""
    if user.pk is None:
        return False
    stored = User.objects.filter(pk=user.pk).values_list("is_superuser", flat=True).first()
    return bool(stored) or user.groups.exists() or user.user_permissions.exists()


def password_set_allowed(*, subject: User, actor: Any) -> bool:
    """Whether `actor` (a user, an anonymous user or None outside a request) may set `subject`'s password."""
    if access_change_actor() is not None or not user_is_privileged(subject):
        return True
    # Outside a request (the shell) nobody is known to be the holder; a re-hash at sign-in runs inside
    # `access_change()` (identity.backends).
    return actor is not None and actor.is_authenticated and actor.pk == subject.pk


def active_superuser_exists(*, excluding: int | None = None) -> bool:
    superusers = User.objects.filter(is_superuser=True, is_active=True)
    if excluding is not None:
        superusers = superusers.exclude(pk=excluding)
    return superusers.exists()


def _current_request() -> Any:
    context = current()
    return context.request if context else None


@receiver(pre_save, sender=User, dispatch_uid="identity_guard_user")
def guard_user_save(sender: Any, instance: User, update_fields: Any = None, **kwargs: Any) -> None:
    if access_change_actor() is not None:
        return
    if update_fields is not None and set(update_fields) == {"last_login"}:
        return
    stored = User.objects.filter(pk=instance.pk).values("is_superuser", "password").first() if instance.pk else None
    # The first install (`createsuperuser`): allowed from the command line while no active superuser
    # exists, never from a request. The audit receivers record the new account.
    becomes_superuser = instance.is_superuser and not (stored and stored["is_superuser"])
    if becomes_superuser and (_current_request() is not None or active_superuser_exists(excluding=instance.pk)):
        raise SecondAdministratorRequired(GRANT_RULE)
    if stored is not None and stored["password"] != instance.password:
        request = _current_request()
        actor = getattr(request, "user", None) if request is not None else None
        if not password_set_allowed(subject=instance, actor=actor):
            raise SecondAdministratorRequired(HOLDER_ONLY_RULE)


def _guard_grant(sender: Any, instance: Any, action: str, pk_set: Any, **kwargs: Any) -> None:
    if action == "pre_add" and pk_set and access_change_actor() is None:
        raise SecondAdministratorRequired(GRANT_RULE)


@receiver(pre_save, sender=Group, dispatch_uid="identity_guard_group_rename")
def guard_group_rename(sender: Any, instance: Group, **kwargs: Any) -> None:
    # `roles_sync` finds a role's group by its name: renaming a group with members into a role's name (or a
    # role's group into another) would hand the role's permissions to other people at the next migrate.
    if access_change_actor() is not None or instance.pk is None:
        return
    stored = Group.objects.filter(pk=instance.pk).values_list("name", flat=True).first()
    role_names = set(Role.values)
    if stored is not None and stored != instance.name and {stored, instance.name} & role_names:
        raise SecondAdministratorRequired(ROLE_NAME_RULE)


m2m_changed.connect(_guard_grant, sender=User.groups.through, dispatch_uid="identity_guard_user_groups")
m2m_changed.connect(_guard_grant, sender=User.user_permissions.through, dispatch_uid="identity_guard_user_perms")
m2m_changed.connect(_guard_grant, sender=Group.permissions.through, dispatch_uid="identity_guard_group_perms")
