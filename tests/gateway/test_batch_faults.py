"""A batch on a version whose output checks its spec refuses, and a batch whose collection fails: neither
is sent to be paid for and never collected, and neither holds up the other batches. A batch whose message
to send it was never published is sent once overdue, and never by two workers at once."""

from __future__ import annotations

import threading
from datetime import timedelta

import httpx2
import pytest
from django.db import connection, connections
from django.db.models import F

from core import tasks as core_tasks
from core.locks import held_alone
from core.tasks import BrokerUnreachable
from gateway.batches import batch_submit_chunks
from gateway.models import Batch
from gateway.tasks import batches_poll, redispatch
from tests.factories import DANGLING_CHECKS, setting_store_unchecked
from tests.gateway.test_batches import create, items
from tests.gateway.upstream import sandbox_requests

pytestmark = pytest.mark.django_db


@pytest.fixture
def fast_batches(world):
    httpx2.post(f"{world['sandbox'].url}/_sandbox/config", json={"batch_seconds": 0}).raise_for_status()
    return world


def test_a_batch_on_a_version_whose_output_checks_its_spec_refuses_is_refused_before_it_is_sent(
    fast_batches, django_capture_on_commit_callbacks
):
    world = fast_batches
    setting_store_unchecked(world["version"], "output_checks", DANGLING_CHECKS)

    with django_capture_on_commit_callbacks(execute=True):
        response = create(world, items(2))

    assert response.status_code == 500
    assert response.json()["title"] == "Prompt version setting unreadable"
    assert not Batch.objects.exists()


def test_a_batch_that_cannot_be_collected_does_not_hold_up_the_others(fast_batches, django_capture_on_commit_callbacks):
    world = fast_batches
    with django_capture_on_commit_callbacks(execute=True):
        older = create(world, items(1)).json()["id"]
        newer = create(world, items(1)).json()["id"]
    Batch.objects.filter(public_id=newer).update(mapping_ciphertext="not sealed")  # its collection fails

    with django_capture_on_commit_callbacks(execute=True):
        batches_poll()

    assert world["http"].get(f"/api/v1/batches/{older}").json()["status"] == "ended"
    assert Batch.objects.get(public_id=newer).status == "in_progress"


def test_a_batch_accepted_while_the_broker_is_down_is_sent_once_the_sweeper_finds_it_overdue(
    fast_batches, django_capture_on_commit_callbacks, monkeypatch, settings
):
    world = fast_batches
    publish = core_tasks.task_enqueue
    refused: list[str] = []

    def broker_down_once(name, *args):
        if not refused:
            refused.append(name)
            raise BrokerUnreachable("Error 111 connecting to the broker. Connection refused.")
        publish(name, *args)

    monkeypatch.setattr("core.tasks.task_enqueue", broker_down_once)
    with django_capture_on_commit_callbacks(execute=True):
        response = create(world, items(2))
    assert response.status_code == 202  # stored; its message could not be published
    batch = Batch.objects.get(public_id=response.json()["id"])
    assert (batch.status, batch.provider_batch_ids) == ("in_progress", [])

    redispatch()
    assert Batch.objects.get(pk=batch.pk).provider_batch_ids == []  # not overdue yet

    Batch.objects.filter(pk=batch.pk).update(
        due_at=F("due_at") - timedelta(seconds=settings.TOLLGATE_REDISPATCH_SECONDS + 1)
    )
    with django_capture_on_commit_callbacks(execute=True):
        redispatch()  # sends it (in place here: no broker)
        batches_poll()  # collects it
    assert world["http"].get(f"/api/v1/batches/{batch.public_id}").json()["status"] == "ended"
    assert len([r for r in sandbox_requests(world) if r["path"] == "/v1/messages/batches"]) == 1


@pytest.mark.django_db(transaction=True)
def test_a_batch_being_sent_by_one_worker_is_not_sent_by_another(fast_batches, settings):
    if connection.vendor != "postgresql":
        pytest.skip("the lock is PostgreSQL's; on SQLite tasks run in one process, in place")
    world = fast_batches
    batch_id = create(world, items(1)).json()["id"]  # eager: sent at once
    Batch.objects.filter(public_id=batch_id).update(provider_batch_ids=[])  # as if it were not sent yet
    pk = Batch.objects.get(public_id=batch_id).pk
    sent = len([r for r in sandbox_requests(world) if r["path"] == "/v1/messages/batches"])
    holding, release = threading.Event(), threading.Event()

    def other_worker() -> None:
        with held_alone("batch_submit", pk):
            holding.set()
            release.wait(30)
        connections.close_all()

    thread = threading.Thread(target=other_worker)
    thread.start()
    holding.wait(30)
    try:
        batch_submit_chunks(pk)
    finally:
        release.set()
        thread.join()

    assert Batch.objects.get(pk=pk).provider_batch_ids == []
    assert len([r for r in sandbox_requests(world) if r["path"] == "/v1/messages/batches"]) == sent
    batch_submit_chunks(pk)  # the lock released: sent now
    assert Batch.objects.get(pk=pk).provider_batch_ids != []
