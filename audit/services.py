"""Recording audit events. Every app calls `audit_event_record()` inside the transaction of its change."""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.contrib.auth.models import AnonymousUser, User
from django.db import models, transaction
from django.utils import timezone

from audit.chain import (
    GENESIS,
    HASHED_FIELDS,
    Problem,
    canonical,
    checkpoint_payload,
    event_hash,
    first_break,
    sign,
    signature_valid,
    signing_key,
)
from audit.context import current
from audit.models import AuditChainHead, AuditCheckpoint, AuditEvent

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
    context = current()
    actor_repr = actor_repr or principal or (context.actor_repr if context and user is None else None)
    if target is not None:
        object_type = object_type or target._meta.label_lower
        object_id = object_id or str(target.pk)
        object_repr = object_repr or str(target)
    client_ip = context.client_ip if context else None
    fields: dict[str, Any] = {
        "actor_id": user.pk if user is not None else None,
        "actor_repr": (actor_repr or (user.get_username() if user is not None else "anonymous"))[:200],
        "action": action,
        "object_type": object_type,
        "object_id": object_id[:64],
        "object_repr": object_repr[:200],
        # Stored as it reads back (JSON types only), so that the hash can be recomputed from the row.
        "changes": json.loads(canonical(mask_secrets(changes or {}))),
        "reason": reason,
        "request_id": context.request_id if context else "",
        "client_ip": ipaddress.ip_address(client_ip).compressed if client_ip else None,
    }
    with transaction.atomic():
        # Locking the head row serialises appends: sequence numbers without gaps, one unbroken chain.
        head, _ = AuditChainHead.objects.select_for_update().get_or_create(id=1)
        # Time taken under the lock, so that time order and sequence order agree (checkpoints rely on it).
        fields.update(sequence=head.last_sequence + 1, previous_hash=head.last_hash, occurred_at=timezone.now())
        fields["hash"] = event_hash(fields)
        head.last_sequence, head.last_hash = fields["sequence"], fields["hash"]
        head.save(update_fields=["last_sequence", "last_hash"])
        return AuditEvent.objects.create(**fields)


# --- checkpoints and verification -------------------------------------------------------------------------

HOUR = timedelta(hours=1)


def audit_checkpoints_write(*, now: datetime | None = None) -> list[AuditCheckpoint]:
    """Sign a checkpoint for every whole hour not yet checkpointed, empty hours included (the hourly beat
    task). The first checkpoint covers the hour of the first event (or the last whole hour)."""
    now = now or timezone.now()
    last_whole_hour = now.replace(minute=0, second=0, microsecond=0)
    previous = AuditCheckpoint.objects.order_by("-period_end").first()
    if previous is None:
        first = AuditEvent.objects.order_by("sequence").values_list("occurred_at", flat=True).first()
        start = (first or last_whole_hour - HOUR).replace(minute=0, second=0, microsecond=0)
        period_end, last_sequence, last_hash, previous_signature = start + HOUR, 0, GENESIS, ""
    else:
        period_end = previous.period_end + HOUR
        last_sequence, last_hash = previous.last_sequence, previous.last_hash
        previous_signature = previous.signature
    written = []
    while period_end <= last_whole_hour:
        newest = AuditEvent.objects.filter(occurred_at__lt=period_end).order_by("-sequence").values("sequence", "hash")
        top = newest.first()
        if top is not None and top["sequence"] > last_sequence:
            first_sequence, count = last_sequence + 1, top["sequence"] - last_sequence
            last_sequence, last_hash = top["sequence"], top["hash"]
        else:
            first_sequence, count = None, 0
        signed: dict[str, Any] = {
            "period_end": period_end,
            "first_sequence": first_sequence,
            "last_sequence": last_sequence,
            "count": count,
            "last_hash": last_hash,
            "previous_signature": previous_signature,
        }
        checkpoint = AuditCheckpoint.objects.create(**signed, signature=sign(checkpoint_payload(**signed)))
        written.append(checkpoint)
        previous_signature = checkpoint.signature
        period_end += HOUR
    return written


@dataclass(frozen=True)
class ChainReport:
    events: int
    checkpoints: int
    head_sequence: int
    problem: Problem | None


def audit_chain_verify(*, public_key: Ed25519PublicKey | None = None) -> ChainReport:
    """Recompute the chain and check it against the head row and every signed checkpoint. Reports the
    first bad sequence number: an edited, deleted, reordered or inserted event, or the newest events
    cut off (truncation, caught by the head and the checkpoints)."""
    public_key = public_key or signing_key().public_key()
    events = AuditEvent.objects.order_by("sequence").values("hash", *HASHED_FIELDS).iterator(chunk_size=5000)
    problem, last_sequence, _ = first_break(events)
    head = AuditChainHead.objects.filter(id=1).first()
    head_sequence = head.last_sequence if head else 0
    count = AuditEvent.objects.count()
    if problem is None and head_sequence > last_sequence:
        problem = Problem(last_sequence + 1, f"events #{last_sequence + 1}–#{head_sequence} are missing (truncated)")
    elif problem is None and last_sequence > head_sequence:
        problem = Problem(head_sequence + 1, "the chain head never handed out this number (inserted)")
    checkpoints = list(AuditCheckpoint.objects.order_by("period_end"))
    hashes = dict(
        AuditEvent.objects.filter(sequence__in={c.last_sequence for c in checkpoints}).values_list("sequence", "hash")
    )
    previous_signature = ""
    for checkpoint in checkpoints:
        payload = checkpoint_payload(
            period_end=checkpoint.period_end,
            first_sequence=checkpoint.first_sequence,
            last_sequence=checkpoint.last_sequence,
            count=checkpoint.count,
            last_hash=checkpoint.last_hash,
            previous_signature=checkpoint.previous_signature,
        )
        found: Problem | None = None
        where = f"checkpoint {checkpoint.period_end:%Y-%m-%d %H:%M}"
        if checkpoint.previous_signature != previous_signature or not signature_valid(
            public_key, payload, checkpoint.signature
        ):
            found = Problem(checkpoint.last_sequence, f"{where}: its signature does not verify")
        elif checkpoint.last_sequence and hashes.get(checkpoint.last_sequence) is None:
            found = Problem(checkpoint.last_sequence, f"{where} vouches for this event and it is missing (truncated)")
        elif checkpoint.last_sequence and hashes[checkpoint.last_sequence] != checkpoint.last_hash:
            found = Problem(checkpoint.last_sequence, f"{where}: the event's hash differs from the signed one")
        if found is not None and (problem is None or found.sequence < problem.sequence):
            problem = found
        previous_signature = checkpoint.signature
    return ChainReport(events=count, checkpoints=len(checkpoints), head_sequence=head_sequence, problem=problem)
