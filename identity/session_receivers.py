"""Sessions end when their holder loses access (docs/admin.md, Sessions).

On signals rather than in the admin, so that every path ends them: the admin's forms, the services, the
shell, a sign-in provider that deactivates an account by saving it, and both sides of a membership
(`user.groups.remove/clear/set`, `group.user_set.remove/clear`) or a group's deletion. Losing access means:
deactivation, losing staff or superuser status, leaving a group (a role), losing a permission held
directly. What sends no signal — `QuerySet.update()`, raw SQL, rows of the link tables written directly — is
beyond this; the request-time checks still hold there (an inactive account is not signed in, the admin
needs staff status, permissions are read at each request), and `manage.py sessions_end` ends the sessions.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group, Permission, User
from django.contrib.auth.signals import user_logged_in
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_delete, pre_save
from django.dispatch import receiver
from django.utils import timezone

from identity.sessions import SessionEnd, session_stamp, sessions_end_for_users

STANDING = {
    "is_active": SessionEnd.DEACTIVATED,
    "is_superuser": SessionEnd.SUPERUSER_REMOVED,
    "is_staff": SessionEnd.STAFF_REMOVED,
}


@receiver(user_logged_in, dispatch_uid="identity_session_signed_in")
def on_signed_in(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    session = getattr(request, "session", None)
    if session is not None:
        session_stamp(session=session, now=timezone.now())


@receiver(pre_save, sender=User, dispatch_uid="identity_session_standing_before")
def on_user_before_save(sender: Any, instance: User, raw: bool = False, update_fields: Any = None, **kw: Any) -> None:
    if raw or instance.pk is None or (update_fields is not None and not set(update_fields) & set(STANDING)):
        return
    instance._session_standing = User.objects.filter(pk=instance.pk).values(*STANDING).first()  # type: ignore[attr-defined]


@receiver(post_save, sender=User, dispatch_uid="identity_session_standing_after")
def on_user_saved(sender: Any, instance: User, created: bool, raw: bool = False, **kwargs: Any) -> None:
    before = instance.__dict__.pop("_session_standing", None)
    if raw or created or not before:
        return
    lost = [cause for field, cause in STANDING.items() if before[field] and not getattr(instance, field)]
    if lost:
        sessions_end_for_users(user_ids=[instance.pk], cause=lost[0])


def _membership_changed(cause: str) -> Any:
    """A receiver of m2m_changed on a link table between users and what they hold (groups, permissions).
    Who actually held what goes is read before the rows go: removing what someone does not hold ends
    nothing."""

    def receive(sender: Any, instance: Any, action: str, reverse: bool, pk_set: Any, **kwargs: Any) -> None:
        # `reverse`: the change was made from the group's (or permission's) side, and `pk_set` names users.
        if action == "pre_remove" and pk_set:
            _remember(instance, sender, _holders(sender, instance, reverse, pk_set))
        elif action == "pre_clear":
            _remember(instance, sender, _holders(sender, instance, reverse, None))
        elif action in ("post_remove", "post_clear"):
            sessions_end_for_users(user_ids=instance.__dict__.get("_session_losing", {}).pop(sender, []), cause=cause)

    return receive


def _holders(through: Any, instance: Any, reverse: bool, pk_set: Any) -> list[int]:
    """The users who hold a link of `through` that is about to go."""
    if reverse:
        users = instance.user_set.all()
        if pk_set is not None:
            users = users.filter(pk__in=pk_set)
        return list(users.values_list("pk", flat=True))
    held = instance.groups if through is User.groups.through else instance.user_permissions
    if pk_set is not None:
        held = held.filter(pk__in=pk_set)
    return [instance.pk] if held.exists() else []


def _remember(instance: Any, through: Any, user_ids: list[int]) -> None:
    instance.__dict__.setdefault("_session_losing", {})[through] = user_ids


_on_groups_changed = _membership_changed(SessionEnd.ROLE_REMOVED)
_on_permissions_changed = _membership_changed(SessionEnd.PERMISSION_REMOVED)
m2m_changed.connect(_on_groups_changed, sender=User.groups.through, dispatch_uid="identity_session_groups")
m2m_changed.connect(
    _on_permissions_changed, sender=User.user_permissions.through, dispatch_uid="identity_session_permissions"
)


# Deleting a group removes its members' links without an m2m signal.
@receiver(pre_delete, sender=Group, dispatch_uid="identity_session_group_members")
def on_group_before_delete(sender: Any, instance: Group, **kwargs: Any) -> None:
    instance._session_members = list(instance.user_set.values_list("pk", flat=True))  # type: ignore[attr-defined]


@receiver(post_delete, sender=Group, dispatch_uid="identity_session_group_deleted")
def on_group_deleted(sender: Any, instance: Group, **kwargs: Any) -> None:
    sessions_end_for_users(user_ids=instance.__dict__.pop("_session_members", []), cause=SessionEnd.ROLE_REMOVED)


@receiver(pre_delete, sender=Permission, dispatch_uid="identity_session_permission_holders")
def on_permission_before_delete(sender: Any, instance: Permission, **kwargs: Any) -> None:
    instance._session_holders = list(instance.user_set.values_list("pk", flat=True))  # type: ignore[attr-defined]


@receiver(post_delete, sender=Permission, dispatch_uid="identity_session_permission_deleted")
def on_permission_deleted(sender: Any, instance: Permission, **kwargs: Any) -> None:
    sessions_end_for_users(user_ids=instance.__dict__.pop("_session_holders", []), cause=SessionEnd.PERMISSION_REMOVED)
