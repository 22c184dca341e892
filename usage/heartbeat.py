"""The Celery worker's heartbeat: written by a periodic task, read by /readyz."""

from __future__ import annotations

from datetime import datetime

from django.core.cache import cache
from django.utils import timezone

WORKER_HEARTBEAT_KEY = "usage:worker-heartbeat"


def worker_heartbeat_record() -> None:
    """Note that a Celery worker is alive and consuming (read by /readyz)."""
    cache.set(WORKER_HEARTBEAT_KEY, timezone.now().isoformat(), timeout=24 * 60 * 60)


def worker_last_seen() -> datetime | None:
    """When a Celery worker last ran the heartbeat task, if one has in the last day."""
    value = cache.get(WORKER_HEARTBEAT_KEY)
    return datetime.fromisoformat(value) if value else None
