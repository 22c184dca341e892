"""Reads of the audit trail that do not recompute it: the chain's state as the hourly checkpoints left it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from audit.models import AuditChainHead, AuditCheckpoint, AuditEvent
from audit.services import CHAIN_VERIFY, checkpoint_due

ANCHOR_CONFLICT = "audit.anchor_conflict"


@dataclass(frozen=True)
class ChainState:
    """What the signed checkpoints vouch for, read from their rows (a few queries however long the trail):
    the newest checkpoint, the events appended after it, whether the checkpoint task is on time, and the
    newest anchor conflict (the checkpoint task found the database differing from what it signed), and the
    last recorded verification of the whole chain (`audit.chain_verify`: the daily task, the command)."""

    checkpoint: AuditCheckpoint | None
    head_sequence: int
    due: datetime
    late: bool
    conflict: AuditEvent | None
    verification: AuditEvent | None  # the last recorded run of the whole verification

    @property
    def unvouched(self) -> int:
        """Events appended after the newest checkpoint: vouched for by the next one."""
        return self.head_sequence - (self.checkpoint.last_sequence if self.checkpoint else 0)


def audit_chain_state(*, now: datetime | None = None) -> ChainState:
    """The chain's state without verifying it (`verify_audit_chain` does): late, as the verifier counts it,
    when the hour due by now has no checkpoint and an event is older than that hour."""
    due = checkpoint_due(now or timezone.now())
    checkpoint = AuditCheckpoint.objects.order_by("-period_end").first()
    head = AuditChainHead.objects.filter(id=1).values_list("last_sequence", flat=True).first()
    late = (checkpoint is None or checkpoint.period_end < due) and AuditEvent.objects.filter(
        occurred_at__lt=due
    ).exists()
    conflict = AuditEvent.objects.filter(action=ANCHOR_CONFLICT).order_by("-sequence").first()
    verification = AuditEvent.objects.filter(action=CHAIN_VERIFY).order_by("-sequence").first()
    return ChainState(
        checkpoint=checkpoint, head_sequence=head or 0, due=due, late=late, conflict=conflict, verification=verification
    )
