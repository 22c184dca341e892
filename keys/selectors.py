"""Reads of keys and API clients."""

from __future__ import annotations

from datetime import date
from functools import partial

from django.db.models import QuerySet
from django.utils import timezone

from core.hotcache import HotCache
from keys.models import KeyStatus, ProviderKey

DUE_SOON_DAYS = 14


_active_keys: HotCache[str, ProviderKey | None] = HotCache()


def _active_key_read(environment: str) -> ProviderKey | None:
    try:  # at most one (a unique constraint); get() spares first()'s ORDER BY on every run
        return ProviderKey.objects.get(environment=environment, status=KeyStatus.ACTIVE)
    except ProviderKey.DoesNotExist:
        return None


def active_provider_key(*, environment: str) -> ProviderKey | None:
    """The key an environment's calls use, from the hot cache (docs/contract.md §12): a rotation or a
    revocation is seen by the next request."""
    return _active_keys.get(environment, partial(_active_key_read, environment))


def rotation_state(key: ProviderKey, *, today: date | None = None) -> str:
    """ "ok", "due soon" (within 14 days) or "overdue"."""
    days_left = (key.next_due.date() - (today or timezone.localdate())).days
    if days_left <= 0:
        return "overdue"
    return "due soon" if days_left <= DUE_SOON_DAYS else "ok"


def keys_needing_rotation(*, today: date | None = None) -> QuerySet[ProviderKey]:
    """Active keys due within 14 days or overdue (for the admin banner)."""
    today = today or timezone.localdate()
    keys = ProviderKey.objects.filter(status=KeyStatus.ACTIVE).only(
        "pk", "label", "environment", "last_four", "last_rotated_at", "rotation_period_days"
    )
    due = [key.pk for key in keys if rotation_state(key, today=today) != "ok"]
    return ProviderKey.objects.filter(pk__in=due)
