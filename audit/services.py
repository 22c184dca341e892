"""Recording audit events. Every app calls `audit_event_record()` inside the transaction of its change."""

from __future__ import annotations

import ipaddress
import json
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.db import DatabaseError, models, transaction
from django.utils import timezone

from audit.anchors import (
    Anchor,
    AuditAnchorConflict,
    anchor_content,
    anchor_directory,
    anchor_log,
    anchor_name,
    anchor_write,
    anchors_read,
)
from audit.chain import (
    GENESIS,
    HASHED_FIELDS,
    KeyRing,
    Problem,
    canonical,
    chain_timestamp,
    checkpoint_payload,
    event_hash,
    first_break,
    key_ring,
    public_key_raw,
    sign,
    signature_valid,
)
from audit.models import AuditChainHead, AuditCheckpoint, AuditEvent
from core.context import current

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


# --- checkpoints, anchors and verification ------------------------------------------------------------------

HOUR = timedelta(hours=1)
logger = logging.getLogger(__name__)


def _hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def checkpoint_due(now: datetime) -> datetime:
    """The end of the newest hour that must have its checkpoint by `now`: the last whole hour once
    TOLLGATE_AUDIT_CHECKPOINT_GRACE_MINUTES have passed after it."""
    return _hour(now - timedelta(minutes=settings.TOLLGATE_AUDIT_CHECKPOINT_GRACE_MINUTES))


def _signed_fields(checkpoint: AuditCheckpoint) -> dict[str, Any]:
    return {
        "period_end": checkpoint.period_end,
        "first_sequence": checkpoint.first_sequence,
        "last_sequence": checkpoint.last_sequence,
        "count": checkpoint.count,
        "last_hash": checkpoint.last_hash,
        "previous_signature": checkpoint.previous_signature,
    }


def _anchor(*, signed: dict[str, Any], signature: str) -> None:
    """Write the checkpoint's anchor file, or on a conflict raise the alarm (CRITICAL log, audit event) and
    stop: the database no longer matches what was signed for that hour."""
    payload = checkpoint_payload(**signed)
    try:
        anchor_write(
            period_end=signed["period_end"], content=anchor_content(signed_payload=payload, signature=signature)
        )
    except AuditAnchorConflict as exc:
        logger.critical("Audit checkpoint anchor conflict: %s", exc)
        audit_event_record(
            action="audit.anchor_conflict",
            actor_repr="system",
            object_type="audit.auditcheckpoint",
            object_repr=anchor_name(signed["period_end"]),
            changes={"period_end": _hour(signed["period_end"]).isoformat(), "directory": str(anchor_directory())},
            reason=str(exc),
        )
        raise
    anchor_log(signed_payload=payload, signature=signature)


def _anchors_backfill() -> None:
    """Checkpoints signed before anchors existed (or before this directory was configured) get their
    anchors once, while the directory holds none: only those whose signatures verify and chain."""
    anchors, unreadable = anchors_read()
    if anchors or unreadable:
        return
    keys, previous_signature, written = key_ring(), "", 0
    for checkpoint in AuditCheckpoint.objects.order_by("period_end"):
        signed = _signed_fields(checkpoint)
        if checkpoint.previous_signature != previous_signature or not signature_valid(
            keys.key_for(checkpoint.period_end), checkpoint_payload(**signed), checkpoint.signature
        ):
            logger.critical("Audit checkpoint %s does not verify: not anchored; run verify_audit_chain.", checkpoint)
            break
        _anchor(signed=signed, signature=checkpoint.signature)
        previous_signature, written = checkpoint.signature, written + 1
    if written:
        logger.warning("Anchored %d audit checkpoints signed before the anchor directory held any.", written)


def audit_checkpoints_write(*, now: datetime | None = None) -> list[AuditCheckpoint]:
    """Sign a checkpoint for every whole hour not yet checkpointed, empty hours included (the hourly beat
    task). The first checkpoint covers the hour of the first event (or the last whole hour). Each is
    anchored (written to TOLLGATE_AUDIT_ANCHOR_DIR, logged) before its row is saved, so a row never
    exists without its anchor; a run that failed in between signs the same bytes again."""
    now = now or timezone.now()
    last_whole_hour = _hour(now)
    _anchors_backfill()
    previous = AuditCheckpoint.objects.order_by("-period_end").first()
    if previous is None:
        first = AuditEvent.objects.order_by("sequence").values_list("occurred_at", flat=True).first()
        start = _hour(first or last_whole_hour - HOUR)
        period_end, last_sequence, last_hash, previous_signature = start + HOUR, 0, GENESIS, ""
    else:
        _signing_key_continues(previous, next_hour=previous.period_end + HOUR)
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
        signature = sign(checkpoint_payload(**signed))
        _anchor(signed=signed, signature=signature)
        written.append(AuditCheckpoint.objects.create(**signed, signature=signature))
        previous_signature = signature
        period_end += HOUR
    return written


class AuditSigningKeyMismatch(Exception):
    """The newest checkpoint does not verify under the key the ring gives its hour: the signing key was
    changed without listing the old one in TOLLGATE_AUDIT_RETIRED_PUBLIC_KEYS (or the row was tampered with)."""


def _signing_key_continues(previous: AuditCheckpoint, *, next_hour: datetime) -> None:
    """Before the next checkpoint is chained to `previous`: `previous` verifies under the key of its hour, or
    nothing more is signed (CRITICAL log, `audit.signing_key_mismatch`); and the first checkpoint under a
    new key records the change of key (`audit.signing_key_change`), once."""
    keys = key_ring()
    signed_with = keys.key_for(previous.period_end)
    reason = ""
    if keys.key_for(next_hour) is not keys.current:
        reason = (
            f"TOLLGATE_AUDIT_RETIRED_PUBLIC_KEYS retires a key after {previous}, the last hour signed: a retired "
            "key's hour is the last one it signed"
        )
    elif not signature_valid(signed_with, checkpoint_payload(**_signed_fields(previous)), previous.signature):
        reason = (
            f"{previous} does not verify under the key of its hour: list the previous signing key in "
            "TOLLGATE_AUDIT_RETIRED_PUBLIC_KEYS with the last hour it signed, or investigate the row"
        )
    if reason:
        logger.critical("Audit checkpoints stopped: %s.", reason)
        audit_event_record(
            action="audit.signing_key_mismatch", actor_repr="system", object_type="audit.auditcheckpoint",
            object_repr=str(previous), changes={"current_key": public_key_raw()}, reason=reason,
        )  # fmt: skip
        raise AuditSigningKeyMismatch(reason)
    if signed_with is not keys.current:
        audit_event_record(
            action="audit.signing_key_change", actor_repr="system", object_type="audit.auditcheckpoint",
            object_repr=str(previous),
            changes={"retired_key": public_key_raw(signed_with), "current_key": public_key_raw(keys.current),
                     "last_hour_of_retired_key": chain_timestamp(previous.period_end)},
            reason="checkpoints from the next hour on are signed with the current key",
        )  # fmt: skip


@dataclass(frozen=True)
class ChainReport:
    events: int
    checkpoints: int
    anchors: int
    head_sequence: int
    # The end of the newest anchored hour, and of the hour that had to be anchored by now.
    covered_to: str | None
    due: datetime
    problem: Problem | None


def _event_hashes(sequences: set[int]) -> dict[int, str]:
    found: dict[int, str] = {}
    wanted = sorted(sequences)
    for start in range(0, len(wanted), 500):  # bounded IN lists (SQLite's variable limit)
        chunk = wanted[start : start + 500]
        found.update(AuditEvent.objects.filter(sequence__in=chunk).values_list("sequence", "hash"))
    return found


def _checkpoint_problems(
    *,
    keys: KeyRing,
    anchors: list[Anchor],
    checkpoints: list[AuditCheckpoint],
    directory: str,
    chain_end: int | None,
) -> list[Problem]:
    """The anchors verify and chain; the checkpoint rows verify, chain and equal the anchors one for one;
    every event an anchor vouches for exists with the signed hash."""
    problems: list[Problem] = []
    previous_signature = ""
    for checkpoint in checkpoints:
        where = f"checkpoint {checkpoint.period_end:%Y-%m-%d %H:%M}"
        if checkpoint.previous_signature != previous_signature or not signature_valid(
            keys.key_for(checkpoint.period_end), checkpoint_payload(**_signed_fields(checkpoint)), checkpoint.signature
        ):
            problems.append(Problem(checkpoint.last_sequence, f"{where}: its signature does not verify"))
        previous_signature = checkpoint.signature
    previous_signature = ""
    for anchor in anchors:
        where = f"anchor {anchor.name}"
        if anchor.previous_signature != previous_signature:
            problems.append(
                Problem(anchor.last_sequence, f"{where} does not follow the anchor before it (one is missing)")
            )
        elif not signature_valid(keys.key_for(anchor.period_end), anchor.payload(), anchor.signature):
            problems.append(Problem(anchor.last_sequence, f"{where}: its signature does not verify"))
        previous_signature = anchor.signature
    rows = {json.loads(checkpoint_payload(**_signed_fields(c)))["period_end"]: c for c in checkpoints}
    anchored = {anchor.period_end for anchor in anchors}
    for anchor in anchors:
        row = rows.get(anchor.period_end)
        if row is None:
            problems.append(
                Problem(anchor.last_sequence, f"anchor {anchor.name} has no checkpoint row in the database (deleted)")
            )
        elif json.loads(checkpoint_payload(**_signed_fields(row))) != anchor.checkpoint or (
            row.signature != anchor.signature
        ):
            problems.append(Problem(anchor.last_sequence, f"the checkpoint row of {anchor.name} differs from it"))
    for period_end, row in rows.items():
        if period_end not in anchored:
            problems.append(
                Problem(
                    row.last_sequence,
                    f"checkpoint {row.period_end:%Y-%m-%d %H:%M} has no anchor in {directory} "
                    "(inserted, or its anchor was removed)",
                )
            )
    hashes = _event_hashes({anchor.last_sequence for anchor in anchors if anchor.last_sequence})
    vouched_before = 0  # the last event the previous anchor vouched for
    for anchor in anchors:
        sequence, where = anchor.last_sequence, f"anchor {anchor.name}"
        if sequence and sequence not in hashes:
            first = chain_end + 1 if chain_end is not None and chain_end < sequence else sequence
            problems.append(
                Problem(first, f"{where} vouches for events up to #{sequence}; #{first} on are missing (truncated)")
            )
        elif sequence and hashes[sequence] != anchor.last_hash:
            problems.append(
                Problem(
                    vouched_before + 1,
                    f"{where}: event #{sequence}'s hash differs from the signed one: an event from "
                    f"#{vouched_before + 1} to #{sequence} was edited and the chain recomputed after it",
                )
            )
        vouched_before = sequence
    return problems


def audit_chain_verify(
    *, public_key: Ed25519PublicKey | None = None, now: datetime | None = None, anchor_dir: Path | None = None
) -> ChainReport:
    """Recompute the chain and check it against the head row, the signed checkpoints and their anchors
    outside the database. Reports the first bad sequence number: an edited, deleted, reordered or
    inserted event; the newest events cut off (truncation, even with the head and the checkpoint rows
    rewritten: the anchors still vouch for them); a checkpoint row deleted, edited or inserted; an anchor
    missing; or no anchor for the last whole hour once TOLLGATE_AUDIT_CHECKPOINT_GRACE_MINUTES have
    passed after it (unless no event is older than that hour: a new installation)."""
    keys = key_ring(public_key)
    now = now or timezone.now()
    directory = anchor_dir or anchor_directory()
    events = AuditEvent.objects.order_by("sequence").values("hash", *HASHED_FIELDS).iterator(chunk_size=5000)
    problem, last_sequence, last_hash = first_break(events)
    problems = [problem] if problem is not None else []
    head = AuditChainHead.objects.filter(id=1).first()
    head_sequence = head.last_sequence if head else 0
    count = AuditEvent.objects.count()
    if problem is None and head_sequence > last_sequence:
        problems.append(
            Problem(last_sequence + 1, f"events #{last_sequence + 1}–#{head_sequence} are missing (truncated)")
        )
    elif problem is None and last_sequence > head_sequence:
        problems.append(Problem(head_sequence + 1, "the chain head never handed out this number (inserted)"))
    elif problem is None and head is not None and head.last_hash != last_hash:
        # The next append would chain from this hash: the trail would break there.
        problems.append(
            Problem(
                head_sequence + 1,
                f"the chain head's hash is not event #{head_sequence}'s: events after it were cut off "
                "(truncated), or the head was edited",
            )
        )
    anchors, unreadable = anchors_read(directory)
    problems.extend(Problem(1, f"anchor {name} in {directory} is not a readable anchor") for name in unreadable)
    checkpoints = list(AuditCheckpoint.objects.order_by("period_end"))
    problems.extend(
        _checkpoint_problems(
            keys=keys,
            anchors=anchors,
            checkpoints=checkpoints,
            directory=str(directory),
            # The last event of an unbroken chain (None when it is broken somewhere).
            chain_end=last_sequence if problem is None else None,
        )
    )
    due = checkpoint_due(now)
    newest = anchors[-1] if anchors else None
    covered_to = newest.period_end if newest else None
    if (covered_to is None or covered_to < chain_timestamp(due)) and AuditEvent.objects.filter(
        occurred_at__lt=due
    ).exists():
        sequence = newest.last_sequence + 1 if newest else 1
        problems.append(
            Problem(
                sequence,
                f"no anchor covers the hour to {due:%Y-%m-%d %H:%M} UTC (newest anchor: "
                f"{newest.name if newest else f'none in {directory}'}): the checkpoint task has not run, "
                f"or checkpoints were removed; events from #{sequence} on are vouched for by nothing",
            )
        )
    first = min(problems, key=lambda found: found.sequence) if problems else None
    return ChainReport(
        events=count,
        checkpoints=len(checkpoints),
        anchors=len(anchors),
        head_sequence=head_sequence,
        covered_to=covered_to,
        due=due,
        problem=first,
    )


CHAIN_VERIFY = "audit.chain_verify"


def audit_chain_verify_recorded(*, actor_repr: str, **options: Any) -> ChainReport:
    """`audit_chain_verify`, and its result recorded in the trail (`audit.chain_verify`): what the home page
    shows auditors as the last verification — when, by whom, intact or where it broke, up to which anchor."""
    report = audit_chain_verify(**options)
    try:
        with transaction.atomic():  # a trail broken by an inserted event cannot take one more: report anyway
            _chain_verify_record(report, actor_repr)
    except DatabaseError as exc:
        logger.error("The chain verification's result could not be recorded in the trail (%s).", type(exc).__name__)
    return report


def _chain_verify_record(report: ChainReport, actor_repr: str) -> None:
    audit_event_record(
        action=CHAIN_VERIFY,
        actor_repr=actor_repr,
        object_type="audit.auditevent",
        object_repr=f"#1–#{report.head_sequence}",
        changes={
            "result": "intact" if report.problem is None else "broken",
            "events": report.events,
            "checkpoints": report.checkpoints,
            "anchors": report.anchors,
            "head_sequence": report.head_sequence,
            "covered_to": report.covered_to,
            "problem_sequence": report.problem.sequence if report.problem else None,
        },
        reason=report.problem.reason if report.problem else "",
    )
