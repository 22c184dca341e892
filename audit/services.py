"""Recording audit events. Every app calls `audit_event_record()` inside the transaction of its change."""

from __future__ import annotations

import re
from typing import Any

from django.contrib.auth.models import AnonymousUser, User
from django.db import models, transaction

from audit.context import current
from audit.models import AuditChainHead, AuditEvent

MASK = "[redacted]"

# Field names whose values are never written to the audit trail, whatever a caller passes in.
_SECRET_NAME = re.compile(
    r"(^|_)(password|passwd|secret|token|api_key|apikey|ciphertext|private_key|credential)s?($|_)"
)


def mask_secrets(value: Any) -> Any:
    """A copy of `value` in which every entry whose key names a secret is masked."""
    if isinstance(value, dict):
        return {
            key: MASK if _SECRET_NAME.search(str(key).lower()) else mask_secrets(item) for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [mask_secrets(item) for item in value]
    return value


def _resolve_actor(actor: User | AnonymousUser | None) -> tuple[User | None, str | None]:
    """The acting user, or for a non-user principal of the request (an API client) its name."""
    principal: Any = actor
    if principal is None:
        context = current()
        request = context.request if context else None
        principal = getattr(request, "user", None) if request is not None else None
    if isinstance(principal, User) and principal.is_authenticated:
        return principal, None
    if principal is not None and getattr(principal, "is_authenticated", False):
        return None, f"{principal._meta.label_lower}:{principal}"
    return None, None


def audit_event_record(
    *,
    action: str,
    actor: User | AnonymousUser | None = None,
    actor_repr: str | None = None,
    target: models.Model | None = None,
    object_type: str = "",
    object_id: str = "",
    object_repr: str = "",
    changes: dict[str, Any] | None = None,
    reason: str = "",
) -> AuditEvent:
    """Append one event to the audit trail and return it.

    `actor` defaults to the user of the current request; `actor_repr` names a non-user actor
    (an API client, "system"). `target` fills the object fields from a model instance. The request id
    and client address come from the bound request context. Runs in the caller's transaction (or its
    own), so the event exists exactly when the change it describes does.
    """
    user, principal = _resolve_actor(actor)
    actor_repr = actor_repr or principal
    if target is not None:
        object_type = object_type or target._meta.label_lower
        object_id = object_id or str(target.pk)
        object_repr = object_repr or str(target)
    context = current()
    with transaction.atomic():
        # Locking the head row serialises appends, so sequence numbers have no gaps and no duplicates.
        head, _ = AuditChainHead.objects.select_for_update().get_or_create(id=1)
        head.last_sequence += 1
        head.save(update_fields=["last_sequence"])
        return AuditEvent.objects.create(
            sequence=head.last_sequence,
            actor=user,
            actor_repr=(actor_repr or (user.get_username() if user is not None else "anonymous"))[:200],
            action=action,
            object_type=object_type,
            object_id=object_id[:64],
            object_repr=object_repr[:200],
            changes=mask_secrets(changes or {}),
            reason=reason,
            request_id=context.request_id if context else "",
            client_ip=context.client_ip if context else None,
        )
