"""Helpers every governed change uses: a role check, a mandatory reason, and a history row that names
the acting user and the reason (django-simple-history)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.db import models

from core.errors import ReasonRequired, RoleRequired


def require_permission(actor: User, permission: str, doing: str) -> None:
    if not actor.has_perm(permission):
        raise RoleRequired(f"{actor.get_username()} may not {doing}.")


def require_reason(reason: str, doing: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise ReasonRequired(f"A reason is required to {doing}.")
    return reason


def save_with_history(instance: models.Model, *, actor: User | None, reason: str) -> None:
    """Save, recording `actor` and `reason` on the history row the save creates."""
    instance._history_user = actor  # type: ignore[attr-defined]
    instance._change_reason = reason  # type: ignore[attr-defined]
    instance.save()


def history_user(request: Any = None, **kwargs: Any) -> User | None:
    """Who simple-history records for a save that names no actor: the request's user, only when that is a
    person. On API requests the principal is an API client, which no history row can point to; the save
    must go through (a ledger row and a settlement may ride on the same transaction)."""
    user = getattr(request, "user", None)
    return user if isinstance(user, User) else None
