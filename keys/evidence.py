"""Evidence types of keys and accounts: access review and key inventory (audit.evidence)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.contrib.auth.models import User
from django.db.models import Count, Q
from django.utils import timezone

from audit.evidence import EvidenceType, Period, register
from audit.models import AuditEvent
from keys.models import ApiClient, ProviderKey
from keys.selectors import rotation_state

ACCESS_COLUMNS = (
    "username",
    "email",
    "active",
    "groups",
    "staff",
    "superuser",
    "last_login",
    "date_joined",
    "api_clients",
    "active_tokens",
)


def _access_rows(period: Period) -> Iterator[dict[str, Any]]:
    """Every account, disabled ones included, as of the export (CC6.1–6.3)."""
    now = timezone.now()
    live_tokens = Q(tokens__revoked_at__isnull=True) & (
        Q(tokens__expires_at__isnull=True) | Q(tokens__expires_at__gt=now)
    )
    clients: dict[int, list[tuple[str, int]]] = {}
    for client in ApiClient.objects.annotate(live=Count("tokens", filter=live_tokens)).order_by("name"):
        clients.setdefault(client.owner_id, []).append((f"{client.name} ({client.environment})", client.live))
    for user in User.objects.prefetch_related("groups").order_by("username").iterator(chunk_size=500):
        owned = clients.get(user.pk, [])
        yield {
            "username": user.username,
            "email": user.email,
            "active": user.is_active,
            "groups": sorted(group.name for group in user.groups.all()),
            "staff": user.is_staff,
            "superuser": user.is_superuser,
            "last_login": user.last_login,
            "date_joined": user.date_joined,
            "api_clients": [name for name, _ in owned],
            "active_tokens": sum(live for _, live in owned),
        }


KEY_COLUMNS = (
    "key",
    "environment",
    "last_four",
    "fingerprint",
    "kek_id",
    "created_by",
    "created_at",
    "rotation_period_days",
    "last_rotated_at",
    "next_rotation_due",
    "rotation_state",
    "status",
    "monthly_cap_usd",
    "daily_cap_usd",
    "cap_changes_in_period",
)
CAP_FIELDS = ("monthly_cap_usd", "daily_cap_usd", "alert_threshold_percent")


def _key_rows(period: Period) -> Iterator[dict[str, Any]]:
    """Every provider key (never its secret), with the cap changes the audit trail records in the period."""
    changes: dict[str, list[str]] = {}
    events = AuditEvent.objects.filter(
        object_type="keys.providerkey", occurred_at__gte=period.start, occurred_at__lt=period.end
    ).order_by("sequence")
    for event in events.iterator(chunk_size=1000):
        for field in CAP_FIELDS:
            if field in event.changes:
                changes.setdefault(event.object_id, []).append(
                    f"{event.occurred_at:%Y-%m-%d} #{event.sequence} {event.actor_repr}: {field} {event.changes[field]}"
                )
    for key in ProviderKey.objects.select_related("created_by").order_by("environment", "created_at"):
        yield {
            "key": key.label,
            "environment": key.environment,
            "last_four": key.last_four,
            "fingerprint": key.fingerprint,
            "kek_id": key.secret_kek_id,
            "created_by": key.created_by.get_username(),
            "created_at": key.created_at,
            "rotation_period_days": key.rotation_period_days,
            "last_rotated_at": key.last_rotated_at,
            "next_rotation_due": key.next_due,
            "rotation_state": rotation_state(key),
            "status": key.status,
            "monthly_cap_usd": key.monthly_cap_usd,
            "daily_cap_usd": key.daily_cap_usd,
            "cap_changes_in_period": changes.get(str(key.pk), []),
        }


def register_all() -> None:
    register(
        EvidenceType(
            name="access_review",
            title="Access review",
            description="Every account, disabled ones included, with its roles, sign-in dates and the API "
            "clients and live tokens it owns, as of the export.",
            columns=ACCESS_COLUMNS,
            rows=_access_rows,
        )
    )
    register(
        EvidenceType(
            name="key_inventory",
            title="Key inventory",
            description="Every provider key (last four and fingerprint, never the secret), its "
            "key-encryption key, rotation state, caps, and the cap changes recorded in the period.",
            columns=KEY_COLUMNS,
            rows=_key_rows,
        )
    )
