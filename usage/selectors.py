"""Usage reads."""

from __future__ import annotations

from datetime import datetime

from django.core.cache import cache

from usage.services import WORKER_HEARTBEAT_KEY


def worker_last_seen() -> datetime | None:
    """When a Celery worker last ran the heartbeat task, if one has in the last day."""
    value = cache.get(WORKER_HEARTBEAT_KEY)
    return datetime.fromisoformat(value) if value else None
