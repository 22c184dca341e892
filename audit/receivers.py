"""Signal receivers: sign-ins and changes to accounts, groups and permissions go to the audit trail (in
the transaction of the change); roles are synced after migrations."""

from __future__ import annotations

from typing import Any

from django.apps import apps as global_apps
from django.contrib.auth.models import Group, User
from django.contrib.auth.signals import user_logged_in, user_logged_out
from django.db import DEFAULT_DB_ALIAS
from django.db.models.signals import m2m_changed, post_delete, post_migrate, post_save, pre_save
from django.dispatch import receiver

from audit.services import audit_event_record
from core.roles import roles_sync


@receiver(user_logged_in, dispatch_uid="audit_login")
def on_login(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    audit_event_record(action="auth.login", actor=user, target=user)


@receiver(user_logged_out, dispatch_uid="audit_logout")
def on_logout(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    if user is not None:
        audit_event_record(action="auth.logout", actor=user, target=user)


# Failed sign-ins and lockouts are recorded by identity.signin (bounded per source, with django-axes).


@receiver(post_migrate, dispatch_uid="audit_roles_sync")
def on_post_migrate(sender: Any, apps: Any = None, using: str = DEFAULT_DB_ALIAS, **kwargs: Any) -> None:
    roles_sync(apps=apps or global_apps, using=using)


# --- accounts, groups and permissions (changed in the admin or anywhere else) ---------------------------

USER_FIELDS = ("username", "email", "first_name", "last_name", "is_active", "is_staff", "is_superuser")


def _is_sign_in(update_fields: Any) -> bool:
    """Django saves only `last_login` on a sign-in, which is recorded as auth.login."""
    return update_fields is not None and set(update_fields) == {"last_login"}


@receiver(pre_save, sender=User, dispatch_uid="audit_user_before")
def on_user_before_save(sender: Any, instance: User, update_fields: Any = None, **kwargs: Any) -> None:
    if _is_sign_in(update_fields):
        return
    stored = User.objects.filter(pk=instance.pk).values(*USER_FIELDS, "password").first() if instance.pk else None
    instance._audit_before = stored  # type: ignore[attr-defined]


@receiver(post_save, sender=User, dispatch_uid="audit_user_saved")
def on_user_saved(sender: Any, instance: User, created: bool, update_fields: Any = None, **kwargs: Any) -> None:
    if _is_sign_in(update_fields):
        return
    before = getattr(instance, "_audit_before", None) or {}
    changes: dict[str, Any] = {
        field: [before.get(field), getattr(instance, field)]
        for field in USER_FIELDS
        if created or before.get(field) != getattr(instance, field)
    }
    if not created and before.get("password") != instance.password:
        changes["password_changed"] = True  # never the hash
    if changes or created:
        audit_event_record(action="user.create" if created else "user.update", target=instance, changes=changes)


@receiver(post_delete, sender=User, dispatch_uid="audit_user_deleted")
def on_user_deleted(sender: Any, instance: User, **kwargs: Any) -> None:
    audit_event_record(action="user.delete", target=instance, object_id=str(instance.pk))


@receiver(post_save, sender=Group, dispatch_uid="audit_group_saved")
def on_group_saved(sender: Any, instance: Group, created: bool, **kwargs: Any) -> None:
    audit_event_record(
        action="group.create" if created else "group.update", target=instance, changes={"name": instance.name}
    )


@receiver(post_delete, sender=Group, dispatch_uid="audit_group_deleted")
def on_group_deleted(sender: Any, instance: Group, **kwargs: Any) -> None:
    audit_event_record(action="group.delete", target=instance, object_id=str(instance.pk))


def _membership_changed(kind: str) -> Any:
    def receiver_(sender: Any, instance: Any, action: str, model: Any, pk_set: Any, **kwargs: Any) -> None:
        if action not in ("post_add", "post_remove", "post_clear"):
            return
        names = sorted(str(item) for item in model.objects.filter(pk__in=pk_set or [])) if pk_set else []
        audit_event_record(
            action=f"{instance._meta.model_name}.{kind}_change",
            target=instance,
            changes={"added" if action == "post_add" else "removed": names or "all"},
        )

    return receiver_


_user_groups = _membership_changed("groups")
_user_permissions = _membership_changed("permissions")
_group_permissions = _membership_changed("permissions")
m2m_changed.connect(_user_groups, sender=User.groups.through, dispatch_uid="audit_user_groups")
m2m_changed.connect(_user_permissions, sender=User.user_permissions.through, dispatch_uid="audit_user_permissions")
m2m_changed.connect(_group_permissions, sender=Group.permissions.through, dispatch_uid="audit_group_permissions")
