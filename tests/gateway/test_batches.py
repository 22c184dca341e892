"""Batches through Anthropic's Message Batches API (the sandbox's), polled by the beat task."""

from __future__ import annotations

import json
import time
from decimal import Decimal

import httpx2
import pytest

from gateway import batches as batch_services
from gateway.models import Batch, BatchItem
from gateway.tasks import batches_poll
from tests.gateway.upstream import EMAIL, PHONE, TICKET, sandbox_requests
from usage.models import SpendReservation, UsageRecord

pytestmark = pytest.mark.django_db


@pytest.fixture
def fast_batches(world):
    httpx2.post(f"{world['sandbox'].url}/_sandbox/config", json={"batch_seconds": 0}).raise_for_status()
    return world


def items(n: int) -> list[dict]:
    return [
        {"custom_id": f"ticket-{i}", "variables": {"ticket": f"{TICKET} #{i}", "customer_email": f"c{i}{EMAIL}"}}
        for i in range(n)
    ]


def create(world, body_items, **extra):
    return world["http"].post("/api/v1/prompts/support-summary/batches", {"items": body_items, **extra}, format="json")


def results(world, batch_id: str) -> list[dict]:
    response = world["http"].get(f"/api/v1/batches/{batch_id}/results")
    assert response["Content-Type"] == "application/x-ndjson"
    return [json.loads(line) for line in b"".join(response.streaming_content).decode().splitlines()]


def test_a_batch_runs_at_half_price_and_its_results_come_back_rehydrated(
    fast_batches, django_capture_on_commit_callbacks
):
    world = fast_batches
    with django_capture_on_commit_callbacks(execute=True):
        response = create(world, items(3))
    assert response.status_code == 202
    batch_id = response.json()["id"]
    assert response["Location"] == f"/api/v1/batches/{batch_id}"

    with django_capture_on_commit_callbacks(execute=True):
        batches_poll()

    detail = world["http"].get(f"/api/v1/batches/{batch_id}").json()
    assert detail["status"] == "ended"
    assert detail["counts"] == {"total": 3, "pending": 0, "succeeded": 3, "errored": 0, "canceled": 0, "expired": 0}
    lines = results(world, batch_id)
    assert [line["custom_id"] for line in lines] == ["ticket-0", "ticket-1", "ticket-2"]
    assert all(line["status"] == "succeeded" for line in lines)
    assert f"c1{EMAIL}" in lines[1]["output"]
    assert PHONE in lines[1]["output"]
    assert f"c1{EMAIL}" not in lines[0]["output"]  # each item rehydrated with its own mapping only
    sent = json.dumps(sandbox_requests(world))
    assert EMAIL not in sent
    assert PHONE not in sent
    rows = list(UsageRecord.objects.filter(endpoint="batch"))
    assert len(rows) == 3
    assert {row.outcome for row in rows} == {"ok"}
    for row in rows:
        full = (row.input_tokens * row.price.input + row.output_tokens * row.price.output) / Decimal(10**6)
        assert row.cost_usd == full / 2
    reservation = SpendReservation.objects.get()
    assert reservation.status == "settled"
    assert reservation.settled_usd == sum(row.cost_usd for row in rows)
    assert Batch.objects.get().mapping_ciphertext == ""
    stored = json.dumps([list(v) for v in BatchItem.objects.values_list()], default=str)
    assert EMAIL not in stored


def test_a_batch_with_bad_items_is_refused_whole_naming_each(world, django_capture_on_commit_callbacks):
    bad = [*items(2), {"custom_id": "ticket-0", "variables": {"ticket": "x", "customer_email": "a@b.co"}}]
    bad.append({"custom_id": "no spaces allowed", "variables": {}})
    bad.append({"custom_id": "typed", "variables": {"ticket": 42, "customer_email": "a@b.co"}})

    with django_capture_on_commit_callbacks(execute=True):
        response = create(world, bad)

    assert response.status_code == 400
    assert response.json()["errors"] == {
        "items[2]": "custom_id 'ticket-0' appears more than once",
        "items[3]": "custom_id: 1 to 64 letters, digits, '-' or '_'",
        "items[4]": {"ticket": "must be a string"},
    }
    assert not Batch.objects.exists()
    assert not SpendReservation.objects.exists()
    assert sandbox_requests(world) == []


def test_errored_canceled_and_expired_items_are_reported_and_never_charged(
    world,
    django_capture_on_commit_callbacks,
):
    sandbox = world["sandbox"].url
    httpx2.post(f"{sandbox}/_sandbox/config", json={"batch_seconds": 3600}).raise_for_status()
    with django_capture_on_commit_callbacks(execute=True):
        expired_id = create(world, items(2)).json()["id"]
        canceled_id = create(world, items(2)).json()["id"]
    expired, _canceled = Batch.objects.get(public_id=expired_id), Batch.objects.get(public_id=canceled_id)
    httpx2.post(f"{sandbox}/_sandbox/batches/{expired.provider_batch_ids[0]}/expire").raise_for_status()

    assert world["http"].post(f"/api/v1/batches/{canceled_id}/cancel").json()["status"] == "canceling"
    assert world["http"].post(f"/api/v1/batches/{canceled_id}/cancel").status_code == 409
    time.sleep(0.6)  # the sandbox ends a canceled batch half a second later
    with django_capture_on_commit_callbacks(execute=True):
        batches_poll()

    assert {line["status"] for line in results(world, expired_id)} == {"expired"}
    assert {line["status"] for line in results(world, canceled_id)} == {"canceled"}
    assert not UsageRecord.objects.exists()
    assert set(SpendReservation.objects.values_list("status", "settled_usd")) == {("settled", Decimal(0))}


def test_an_invalid_request_inside_a_batch_is_an_errored_item(world, monkeypatch, django_capture_on_commit_callbacks):
    httpx2.post(f"{world['sandbox'].url}/_sandbox/config", json={"batch_seconds": 0}).raise_for_status()
    real = batch_services._params
    monkeypatch.setattr(batch_services, "_params", lambda batch, messages: {**real(batch, messages), "messages": []})
    with django_capture_on_commit_callbacks(execute=True):
        batch_id = create(world, items(1)).json()["id"]
    batches_poll()

    (line,) = results(world, batch_id)
    assert line["status"] == "errored"
    assert line["error"]["type"] == "invalid_request_error"
    assert UsageRecord.objects.get().outcome == "client_error"


def test_a_large_batch_is_split_under_the_apis_limits(fast_batches, monkeypatch, django_capture_on_commit_callbacks):
    monkeypatch.setattr(batch_services, "PROVIDER_MAX_REQUESTS", 2)
    with django_capture_on_commit_callbacks(execute=True):
        batch_id = create(fast_batches, items(5)).json()["id"]
    batches_poll()

    assert len(Batch.objects.get(public_id=batch_id).provider_batch_ids) == 3
    assert [line["status"] for line in results(fast_batches, batch_id)] == ["succeeded"] * 5
    assert UsageRecord.objects.filter(endpoint="batch").count() == 5


def test_without_a_worker_reading_the_batch_collects_its_results(
    fast_batches, settings, django_capture_on_commit_callbacks
):
    settings.TOLLGATE_BROKER_CONFIGURED = False  # the embedded default: no beat polls
    with django_capture_on_commit_callbacks(execute=True):
        batch_id = create(fast_batches, items(1)).json()["id"]

    assert fast_batches["http"].get(f"/api/v1/batches/{batch_id}").json()["status"] == "ended"


def test_items_of_a_part_that_could_not_be_submitted_end_errored(fast_batches, monkeypatch,
                                                                  django_capture_on_commit_callbacks):  # fmt: skip
    real_chunks = batch_services.chunks

    def second_part_fails(requests):
        for index, chunk in enumerate(real_chunks(requests)):
            if index == 1:  # Anthropic fails for the second part, retries included
                httpx2.post(f"{fast_batches['sandbox'].url}/_sandbox/faults", json={"status": 500, "count": 3})
            yield chunk

    monkeypatch.setattr(batch_services, "PROVIDER_MAX_REQUESTS", 2)
    monkeypatch.setattr(batch_services, "chunks", second_part_fails)
    with django_capture_on_commit_callbacks(execute=True):
        batch_id = create(fast_batches, items(3)).json()["id"]
    batches_poll()

    statuses = {line["custom_id"]: line["status"] for line in results(fast_batches, batch_id)}
    assert statuses == {"ticket-0": "succeeded", "ticket-1": "succeeded", "ticket-2": "errored"}
    assert fast_batches["http"].get(f"/api/v1/batches/{batch_id}").json()["status"] == "ended"
    assert UsageRecord.objects.filter(outcome="server_error").count() == 1  # the failed submission


def test_a_collection_repeated_after_a_crash_writes_each_items_row_once(
    fast_batches, monkeypatch, django_capture_on_commit_callbacks
):
    world = fast_batches
    with django_capture_on_commit_callbacks(execute=True):
        batch_id = create(world, items(3)).json()["id"]
    batch = Batch.objects.get(public_id=batch_id)

    def crash(*args, **kwargs):
        raise RuntimeError("the worker died before the items were marked")

    with monkeypatch.context() as patched:  # every item's row is written, then the collection dies
        patched.setattr(BatchItem.objects, "bulk_update", crash)
        with pytest.raises(RuntimeError):
            batch_services.batch_results_collect(batch)
    batch_services.batch_results_collect(Batch.objects.get(pk=batch.pk))  # the next poll collects again

    rows = UsageRecord.objects.filter(endpoint="batch", outcome="ok")
    assert rows.count() == 3
    reservation = SpendReservation.objects.get(request_id=batch.request_id)
    assert reservation.status == "settled"
    assert reservation.settled_usd == sum(row.cost_usd for row in rows)
    assert Batch.objects.get(pk=batch.pk).status == "ended"
