"""Tasks run through a real Celery worker process on the real broker."""

from __future__ import annotations

import time

import pytest
from django.core.cache import cache

from usage.heartbeat import WORKER_HEARTBEAT_KEY, worker_last_seen
from usage.tasks import worker_heartbeat


@pytest.mark.celery_worker
@pytest.mark.django_db
def test_a_worker_runs_the_heartbeat_and_readyz_shows_it(celery_worker, client):
    cache.delete(WORKER_HEARTBEAT_KEY)

    worker_heartbeat.delay()
    deadline = time.monotonic() + 30
    while worker_last_seen() is None and time.monotonic() < deadline:
        time.sleep(0.1)

    assert worker_last_seen() is not None
    assert client.get("/readyz").json()["worker_last_seen"] is not None


@pytest.mark.django_db
def test_without_a_worker_tasks_run_in_process():
    cache.delete(WORKER_HEARTBEAT_KEY)

    worker_heartbeat.delay()

    assert worker_last_seen() is not None
