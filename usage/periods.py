"""When a spend period starts, and how long a reservation may be held before its holder is presumed dead."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from django.conf import settings
from django.utils import timezone

from usage.choices import Period

# How long a call's holder may take before it is presumed dead. Far longer than a call can last: the SDK
# gives up after TOLLGATE_UPSTREAM_TIMEOUT × (retries + 1), and a stream renews its hold as it flows.
RESERVATION_TTL = timedelta(minutes=15)


def reservation_ttl() -> timedelta:
    longest_call = settings.TOLLGATE_UPSTREAM_TIMEOUT * (settings.TOLLGATE_UPSTREAM_MAX_RETRIES + 1) + 60
    return max(RESERVATION_TTL, timedelta(seconds=longest_call))


def period_start(period: str, at: datetime) -> date:
    """Calendar periods in UTC."""
    day = at.astimezone(UTC).date() if timezone.is_aware(at) else at.date()
    return day.replace(day=1) if period == Period.MONTH else day
