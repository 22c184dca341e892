"""Signal receivers: sign-in events go to the audit trail; roles are synced after migrations."""

from __future__ import annotations

from typing import Any

from django.apps import apps as global_apps
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db import DEFAULT_DB_ALIAS
from django.db.models.signals import post_migrate
from django.dispatch import receiver

from audit.roles import roles_sync
from audit.services import audit_event_record


@receiver(user_logged_in, dispatch_uid="audit_login")
def on_login(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    audit_event_record(action="auth.login", actor=user, target=user)


@receiver(user_logged_out, dispatch_uid="audit_logout")
def on_logout(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    if user is not None:
        audit_event_record(action="auth.logout", actor=user, target=user)


@receiver(user_login_failed, dispatch_uid="audit_login_failed")
def on_login_failed(sender: Any, credentials: dict[str, Any], request: Any = None, **kwargs: Any) -> None:
    # Only the name that was tried: the rest of `credentials` is the password.
    username = str(credentials.get(get_user_model().USERNAME_FIELD, ""))[:150]
    audit_event_record(
        action="auth.login_failed",
        actor_repr="anonymous",
        object_type="auth.user",
        object_repr=username,
        changes={"username": username},
    )


@receiver(post_migrate, dispatch_uid="audit_roles_sync")
def on_post_migrate(sender: Any, apps: Any = None, using: str = DEFAULT_DB_ALIAS, **kwargs: Any) -> None:
    roles_sync(apps=apps or global_apps, using=using)
