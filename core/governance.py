"""Helpers every governed change uses: a role check, a mandatory reason, and a history row that names
the acting user and the reason (django-simple-history)."""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

from django.contrib.auth.models import User
from django.db import models

from core.errors import DomainError, ReasonRequired, RoleRequired
from core.hotcache import generation_bump
from core.mfa import session_verification_refusal

M = TypeVar("M", bound=models.Model)


def require_permission(actor: User, permission: str, doing: str) -> None:
    """Refuses `actor` without `permission`, and a signed-in session acting for `actor` that had to verify
    a second factor and did not (core/mfa.py)."""
    if not actor.has_perm(permission):
        raise RoleRequired(f"{actor.get_username()} may not {doing}.")
    if refusal := session_verification_refusal(actor):
        raise refusal


def require_reason(reason: str, doing: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise ReasonRequired(f"A reason is required to {doing}.")
    return reason


def save_with_history(instance: models.Model, *, actor: User | None, reason: str) -> None:
    """Save, recording `actor` and `reason` on the history row the save creates. Every governed change
    invalidates the hot cache (its generation is bumped when the transaction commits)."""
    instance._history_user = actor  # type: ignore[attr-defined]
    instance._change_reason = reason  # type: ignore[attr-defined]
    instance.save()
    generation_bump()


def audit_value(value: Any) -> Any:
    """A value as the audit trail stores it: JSON-friendly, people by username."""
    if isinstance(value, User):
        return value.get_username()
    if isinstance(value, Decimal | datetime):
        return str(value)
    return value


def governed_update(
    instance: M,
    *,
    actor: User,
    reason: str,
    changes: dict[str, Any],
    fields: Collection[str],
    refuse: Callable[[list[str]], DomainError],
) -> tuple[M, dict[str, list[Any]]]:
    """The one way a governed record's settings change (the caller has checked permission and reason): only
    `fields` (others are refused with `refuse(names)`), on the row locked for the change, validated, saved
    with a history row naming actor and reason. Returns the saved row and what changed as the audit trail
    records it: {field: [before, after]}."""
    if unknown := sorted(set(changes) - set(fields)):
        raise refuse(unknown)
    locked = type(instance)._default_manager.select_for_update().get(pk=instance.pk)
    before = {field: getattr(locked, field) for field in changes}
    for field, value in changes.items():
        setattr(locked, field, value)
    locked.full_clean()
    save_with_history(locked, actor=actor, reason=reason)
    changed = {
        field: [audit_value(before[field]), audit_value(value)]
        for field, value in changes.items()
        if before[field] != value
    }
    return locked, changed


def history_user(request: Any = None, **kwargs: Any) -> User | None:
    """Who simple-history records for a save that names no actor: the request's user, only when that is a
    person. On API requests the principal is an API client, which no history row can point to; the save
    must go through (a ledger row and a settlement may ride on the same transaction)."""
    user = getattr(request, "user", None)
    return user if isinstance(user, User) else None
