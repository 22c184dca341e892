"""A batch's results are settled once: collected twice, by two pollers at once, or again after a collection
died midway, each item has one ledger row and the caps count the batch's spend once."""

from __future__ import annotations

import json
import threading
from decimal import Decimal

import httpx2
import pytest
from django.db import connection

from gateway import batches as batch_services
from gateway.models import Batch, BatchItem
from gateway.selectors import batch_results_lines
from gateway.tasks import batches_poll
from tests.gateway.upstream import EMAIL, TICKET
from usage.models import SpendCounter, SpendReservation, UsageRecord

pytestmark = pytest.mark.django_db


@pytest.fixture
def fast_batches(world):
    httpx2.post(f"{world['sandbox'].url}/_sandbox/config", json={"batch_seconds": 0}).raise_for_status()
    return world


def submitted(world, n: int, capture=None, callback_url: str = "") -> Batch:
    """A batch of n items, accepted and sent to the sandbox (which ends it at once)."""
    items = [{"custom_id": f"t-{i}", "variables": {"ticket": f"{TICKET} #{i}", "customer_email": EMAIL}}
             for i in range(n)]  # fmt: skip
    body = {"items": items, **({"callback_url": callback_url} if callback_url else {})}
    if capture is None:  # a transactional test: the submission runs as the acceptance commits
        response = world["http"].post("/api/v1/prompts/support-summary/batches", body, format="json")
    else:
        with capture(execute=True):
            response = world["http"].post("/api/v1/prompts/support-summary/batches", body, format="json")
    assert response.status_code == 202, response.content
    batch = Batch.objects.select_related("api_client", "version__prompt", "provider_key").get(
        public_id=response.json()["id"]
    )
    assert batch.provider_batch_ids
    assert batch.status == "in_progress"
    return batch


def assert_settled_once(batch: Batch, n: int) -> None:
    rows = UsageRecord.objects.filter(endpoint="batch", request_id=batch.request_id)
    assert sorted(rows.values_list("call_id", flat=True), key=str) == sorted(
        f"{batch.public_id}/t-{i}" for i in range(n)
    )
    assert set(rows.values_list("outcome", flat=True)) == {"ok"}
    spent = sum(rows.values_list("cost_usd", flat=True), Decimal(0))
    assert spent > 0
    reservation = SpendReservation.objects.get(request_id=batch.request_id)
    assert (reservation.status, reservation.settled_usd) == ("settled", spent)
    counter = SpendCounter.objects.get(scope="provider_key", period="month")
    assert (counter.spent_usd, counter.reserved_usd) == (spent, Decimal(0))
    assert set(BatchItem.objects.filter(batch=batch).values_list("status", flat=True)) == {"succeeded"}
    assert Batch.objects.get(pk=batch.pk).status == "ended"


def test_a_batch_collected_twice_writes_each_row_once_and_counts_once(
    fast_batches, receiver, django_capture_on_commit_callbacks
):
    batch = submitted(fast_batches, 3, django_capture_on_commit_callbacks, callback_url=receiver.url)
    stale = Batch.objects.select_related("api_client", "version__prompt", "provider_key").get(pk=batch.pk)

    with django_capture_on_commit_callbacks(execute=True):
        batches_poll()
    with django_capture_on_commit_callbacks(execute=True) as second:
        batch_services.batch_results_collect(stale)  # a poll that read the batch while it was still open
        batch_services.batch_results_collect(Batch.objects.get(pk=batch.pk))

    assert second == []  # nothing settled, no alert checked, no callback queued
    assert_settled_once(batch, 3)
    assert len(receiver.received) == 1
    lines = [json.loads(line) for line in batch_results_lines(Batch.objects.get(pk=batch.pk))]
    assert [line["status"] for line in lines] == ["succeeded"] * 3


def test_a_collection_that_dies_midway_is_completed_once_by_the_next_poll(
    fast_batches, monkeypatch, django_capture_on_commit_callbacks
):
    batch = submitted(fast_batches, 5, django_capture_on_commit_callbacks)
    monkeypatch.setattr(batch_services, "COLLECT_CHUNK", 2)
    real_checks, checked = batch_services.output_checks_run, []

    def dies_at_the_third_item(checks, output):
        checked.append(output)
        if len(checked) == 3:
            raise RuntimeError("the worker died while collecting")
        return real_checks(checks, output)

    with monkeypatch.context() as patched:
        patched.setattr(batch_services, "output_checks_run", dies_at_the_third_item)
        with pytest.raises(RuntimeError):
            batch_services.batch_results_collect(batch)

    # The first chunk is settled whole, the second not at all; the reservation still holds the batch.
    rows = UsageRecord.objects.filter(endpoint="batch")
    assert sorted(rows.values_list("call_id", flat=True)) == [f"{batch.public_id}/t-0", f"{batch.public_id}/t-1"]
    reservation = SpendReservation.objects.get(request_id=batch.request_id)
    assert reservation.status == "held"
    assert reservation.settled_usd == sum(rows.values_list("cost_usd", flat=True), Decimal(0))
    counter = SpendCounter.objects.get(scope="provider_key", period="month")
    assert (counter.spent_usd, counter.reserved_usd) == (0, reservation.amount_usd)
    statuses = sorted(BatchItem.objects.filter(batch=batch).values_list("status", flat=True))
    assert statuses == ["pending", "pending", "pending", "succeeded", "succeeded"]
    assert Batch.objects.get(pk=batch.pk).status == "in_progress"

    with django_capture_on_commit_callbacks(execute=True):
        batches_poll()

    assert_settled_once(batch, 5)


@pytest.mark.django_db(transaction=True)
def test_two_collections_at_once_write_each_row_once_and_count_once(fast_batches, receiver, monkeypatch):
    if connection.vendor != "postgresql":
        pytest.skip("concurrent collectors need PostgreSQL; SQLite serialises every writer (BEGIN IMMEDIATE)")
    batch = submitted(fast_batches, 6, callback_url=receiver.url)
    monkeypatch.setattr(batch_services, "COLLECT_CHUNK", 1)  # the collectors interleave item by item
    start = threading.Barrier(3)
    errors: list[BaseException] = []

    def collect() -> None:
        try:
            mine = Batch.objects.select_related("api_client", "version__prompt", "provider_key").get(pk=batch.pk)
            start.wait(timeout=30)
            batch_services.batch_results_collect(mine)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=collect) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert_settled_once(batch, 6)
    assert len(receiver.received) == 1  # the batch ended once
