from __future__ import annotations

from typing import Any, NoReturn

from django.conf import settings
from django.db import models
from django.utils import timezone


class AuditLogIsAppendOnly(Exception):
    """Raised on any attempt to change or remove a recorded audit event."""


class AuditEventQuerySet(models.QuerySet["AuditEvent"]):
    """Reads only: the bulk paths that would skip the audit service are closed."""

    def update(self, **kwargs: Any) -> NoReturn:
        raise AuditLogIsAppendOnly("Audit events cannot be updated.")

    def delete(self) -> NoReturn:
        raise AuditLogIsAppendOnly("Audit events cannot be deleted.")

    def bulk_create(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise AuditLogIsAppendOnly("Audit events are recorded one by one through audit_event_record().")

    def bulk_update(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise AuditLogIsAppendOnly("Audit events cannot be updated.")


class AuditEvent(models.Model):
    """One governed change or security event: who did what to which object, when, from where.

    Append-only. Events are numbered without gaps by `audit_event_record()`, which serialises appends
    through `AuditChainHead`, and chained: each stores the previous event's hash and its own over a
    canonical encoding (`audit.chain`), so an edited, deleted, reordered or inserted event breaks the
    chain at its sequence number; signed hourly checkpoints catch the newest events being cut off.
    """

    sequence = models.BigIntegerField(unique=True, editable=False)
    occurred_at = models.DateTimeField(default=timezone.now, editable=False, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        # Accounts that acted are disabled, never deleted: their history must stay attributable.
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        editable=False,
    )
    # Who acted, as they were named at the time (a user, an API client, or "system").
    actor_repr = models.CharField("actor", max_length=200, editable=False)
    action = models.CharField(max_length=100, editable=False, db_index=True)
    object_type = models.CharField(max_length=100, blank=True, editable=False)
    object_id = models.CharField(max_length=64, blank=True, editable=False)
    object_repr = models.CharField("object", max_length=200, blank=True, editable=False)
    # Before/after values or other facts of the change; never secrets (masked by the service).
    changes = models.JSONField(default=dict, blank=True, editable=False)
    reason = models.TextField(blank=True, editable=False)
    request_id = models.CharField(max_length=128, blank=True, editable=False)
    client_ip = models.GenericIPAddressField("client IP", null=True, blank=True, editable=False)
    previous_hash = models.CharField(max_length=64, editable=False)
    hash = models.CharField(max_length=64, editable=False)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-sequence"]
        indexes = [models.Index(fields=["object_type", "object_id"])]
        permissions = [("export_evidence", "Can download evidence packages")]

    def __str__(self) -> str:
        return f"#{self.sequence} {self.action} by {self.actor_repr}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AuditLogIsAppendOnly("Audit events cannot be updated.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise AuditLogIsAppendOnly("Audit events cannot be deleted.")


class AuditChainHead(models.Model):
    """The single row that every append locks: the last sequence number handed out and its hash."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1, editable=False)
    last_sequence = models.BigIntegerField(default=0)
    last_hash = models.CharField(max_length=64, default="0" * 64)

    def __str__(self) -> str:
        return f"audit chain head at #{self.last_sequence}"


class AuditCheckpoint(models.Model):
    """The chain's state at the end of one hour, signed with TOLLGATE_AUDIT_SIGNING_KEY (Ed25519) and
    chained to the previous checkpoint's signature. Written for every hour, empty ones included, so that
    removing the newest events (truncation) is detected against the last checkpoint."""

    period_end = models.DateTimeField(unique=True, editable=False)
    first_sequence = models.BigIntegerField(null=True, blank=True, editable=False)
    last_sequence = models.BigIntegerField(editable=False)
    count = models.PositiveIntegerField(editable=False)
    last_hash = models.CharField(max_length=64, editable=False)
    previous_signature = models.CharField(max_length=128, blank=True, editable=False)
    signature = models.CharField(max_length=128, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-period_end"]

    def __str__(self) -> str:
        return f"checkpoint to {self.period_end:%Y-%m-%d %H:%M} (#{self.last_sequence})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AuditLogIsAppendOnly("Checkpoints cannot be updated.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise AuditLogIsAppendOnly("Checkpoints cannot be deleted.")
