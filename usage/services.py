"""Usage services."""

from __future__ import annotations

from django.core.cache import cache
from django.utils import timezone

WORKER_HEARTBEAT_KEY = "usage:worker-heartbeat"


def worker_heartbeat_record() -> None:
    """Note that a Celery worker is alive and consuming (read by /readyz)."""
    cache.set(WORKER_HEARTBEAT_KEY, timezone.now().isoformat(), timeout=24 * 60 * 60)
