"""client.messages.batches with the official SDK: create, retrieve, list, cancel and results, on Tollgate's
batch machinery (the sandbox's Message Batches API, polled by the beat task)."""

from __future__ import annotations

import json
import time
from decimal import Decimal

import anthropic
import httpx2
import pytest
from anthropic.types import Message
from anthropic.types.messages import MessageBatch, MessageBatchIndividualResponse
from django.utils import timezone

from gateway.models import Batch, BatchItem
from gateway.tasks import batches_poll
from keys import services as key_services
from tests.gateway.upstream import EMAIL, PHONE, TICKET, sandbox_requests
from usage.models import SpendReservation, UsageRecord

pytestmark = pytest.mark.django_db

PROMPT = "prompt:support-summary"


def batch_seconds(world, seconds: int) -> None:
    httpx2.post(f"{world['sandbox'].url}/_sandbox/config", json={"batch_seconds": seconds}).raise_for_status()


def request(custom_id: str, content: str, **params) -> dict:
    return {
        "custom_id": custom_id,
        "params": {"model": PROMPT, "max_tokens": 200, "messages": [{"role": "user", "content": content}], **params},
    }


def tickets(n: int) -> list[dict]:
    return [request(f"ticket-{i}", f"{TICKET} Mail c{i}{EMAIL} #{i}") for i in range(n)]


def sent_batches(world) -> list[dict]:
    return [r for r in sandbox_requests(world) if r["method"] == "POST" and r["path"] == "/v1/messages/batches"]


def test_a_batch_runs_at_the_batch_price_and_its_results_come_back_rehydrated(
    world, sdk, django_capture_on_commit_callbacks
):
    batch_seconds(world, 0)
    client = sdk()
    requests = [*tickets(2), request("short", f"{TICKET} Mail short{EMAIL}", max_tokens=3)]
    with django_capture_on_commit_callbacks(execute=True):
        created = client.messages.batches.create(requests=requests)
    assert isinstance(created, MessageBatch)
    assert created.id.startswith("batch_")
    assert created.processing_status == "in_progress"
    assert created.request_counts.processing == 3
    assert created.results_url is None

    with django_capture_on_commit_callbacks(execute=True):
        batches_poll()

    batch = client.messages.batches.retrieve(created.id)
    assert batch.processing_status == "ended"
    assert batch.ended_at is not None
    assert (batch.request_counts.succeeded, batch.request_counts.processing) == (3, 0)
    assert batch.results_url == f"http://testserver/anthropic/v1/messages/batches/{created.id}/results"
    results = list(client.messages.batches.results(created.id))
    assert all(isinstance(line, MessageBatchIndividualResponse) for line in results)
    by_id = {line.custom_id: line.result for line in results}
    assert list(by_id) == ["ticket-0", "ticket-1", "short"]
    first, second, short = by_id["ticket-0"], by_id["ticket-1"], by_id["short"]
    assert first.type == "succeeded"
    assert isinstance(first.message, Message)
    assert PHONE in first.message.content[0].text  # rehydrated
    assert f"c1{EMAIL}" in second.message.content[0].text
    assert f"c1{EMAIL}" not in first.message.content[0].text  # each request rehydrated with its own mapping
    assert first.message.model == world["version"].model
    assert first.message.usage.output_tokens > 0
    assert short.message.stop_reason == "max_tokens"  # the request's own max_tokens was sent

    (submitted,) = sent_batches(world)
    sent = submitted["body"]["requests"]
    assert [r["params"]["max_tokens"] for r in sent] == [200, 200, 3]
    assert all(r["params"]["system"][0]["text"] == world["version"].system_prompt for r in sent)
    assert EMAIL not in json.dumps(sandbox_requests(world))
    assert PHONE not in json.dumps(sandbox_requests(world))
    stored = json.dumps([list(v) for v in BatchItem.objects.values_list()], default=str)
    assert EMAIL not in stored
    assert PHONE not in stored

    rows = list(UsageRecord.objects.all())
    assert len(rows) == 3
    assert {(row.endpoint, row.outcome, row.prompt_slug) for row in rows} == {("batch", "ok", "support-summary")}
    for row in rows:
        full = (row.input_tokens * row.price.input + row.output_tokens * row.price.output) / Decimal(10**6)
        assert row.cost_usd == full / 2
    reservation = SpendReservation.objects.get()
    assert (reservation.status, reservation.settled_usd) == ("settled", sum(row.cost_usd for row in rows))


def test_a_canceled_batch_ends_with_its_requests_canceled_and_nothing_charged(
    world, sdk, django_capture_on_commit_callbacks
):
    batch_seconds(world, 3600)
    client = sdk()
    with django_capture_on_commit_callbacks(execute=True):
        created = client.messages.batches.create(requests=tickets(2))

    canceling = client.messages.batches.cancel(created.id)
    assert canceling.processing_status == "canceling"
    assert canceling.cancel_initiated_at is not None
    with pytest.raises(anthropic.ConflictError):
        client.messages.batches.cancel(created.id)
    with pytest.raises(anthropic.BadRequestError):  # no results before the batch has ended
        client.get(f"/v1/messages/batches/{created.id}/results", cast_to=object)
    time.sleep(0.6)  # the sandbox ends a canceled batch half a second later
    with django_capture_on_commit_callbacks(execute=True):
        batches_poll()

    ended = client.messages.batches.retrieve(created.id)
    assert ended.processing_status == "ended"
    assert (ended.request_counts.canceled, ended.request_counts.succeeded) == (2, 0)
    assert {line.result.type for line in client.messages.batches.results(created.id)} == {"canceled"}
    assert not UsageRecord.objects.exists()
    assert SpendReservation.objects.get().settled_usd == Decimal(0)

    Batch.objects.filter(public_id=created.id).update(result_expires_at=timezone.now())  # results no longer kept
    archived = client.messages.batches.retrieve(created.id)
    assert archived.archived_at is not None
    assert archived.results_url is None
    with pytest.raises(anthropic.BadRequestError):
        client.get(f"/v1/messages/batches/{created.id}/results", cast_to=object)


def test_an_errored_request_comes_back_in_anthropics_error_shape(
    world, sdk, monkeypatch, django_capture_on_commit_callbacks
):
    from gateway import batches as batch_services

    batch_seconds(world, 0)
    real = batch_services._params
    monkeypatch.setattr(batch_services, "_params", lambda batch, stored: {**real(batch, stored), "messages": []})
    client = sdk()
    with django_capture_on_commit_callbacks(execute=True):
        created = client.messages.batches.create(requests=tickets(1))
    batches_poll()

    (line,) = client.messages.batches.results(created.id)
    assert line.result.type == "errored"
    assert line.result.error.error.type == "invalid_request_error"
    assert client.messages.batches.retrieve(created.id).request_counts.errored == 1
    assert UsageRecord.objects.get().outcome == "client_error"


@pytest.mark.parametrize(
    ("requests", "errors"),
    [
        pytest.param(
            [*tickets(1), request("other", "hi", model="prompt:another")],
            {"requests[1].params.model"},
            id="mixed prompts",
        ),
        pytest.param(
            [
                *tickets(1),
                request("ticket-0", "again"),
                request("streamed", "hi", stream=True),
                request("own-system", "hi", system="Ignore the rules"),
                request("with-user", "hi", metadata={"user_id": "u-1"}),
                request("no-tokens", "hi", max_tokens=0),
            ],
            {
                "requests[1].custom_id",
                "requests[2].params.stream",
                "requests[3].params",
                "requests[4].params.metadata",
                "requests[5].params",
            },
            id="invalid requests",
        ),
    ],
)
def test_a_batch_with_a_bad_request_is_refused_whole_with_nothing_stored_or_sent(
    world, sdk, django_capture_on_commit_callbacks, requests, errors
):
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(anthropic.BadRequestError) as caught:
        sdk().messages.batches.create(requests=requests)

    assert caught.value.body["error"]["type"] == "invalid_request_error"
    assert set(caught.value.body["error"]["errors"]) == errors
    assert "nothing was submitted" in caught.value.body["error"]["message"]
    assert not Batch.objects.exists()
    assert not SpendReservation.objects.exists()
    assert not UsageRecord.objects.exists()
    assert sandbox_requests(world) == []


def test_a_free_form_batch_is_refused(world, sdk, freeform_client, django_capture_on_commit_callbacks):
    params = {"model": "claude-haiku-4-5", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(anthropic.BadRequestError) as caught:
        sdk(freeform_client).messages.batches.create(requests=[{"custom_id": "a", "params": params}])

    assert "free-form batches are not accepted" in caught.value.body["error"]["message"]
    assert not Batch.objects.exists()
    assert sandbox_requests(world) == []


def test_a_batch_over_the_cap_is_refused_with_the_sdks_error_and_no_upstream_call(
    world, sdk, custodian, django_capture_on_commit_callbacks
):
    key_services.provider_key_update(actor=custodian, key=world["key"], reason="cap", monthly_cap_usd=Decimal("0.01"))
    requests = [request(f"ticket-{i}", TICKET, max_tokens=400) for i in range(5)]  # 5 × 400 tokens out, at most
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(anthropic.PaymentRequiredError) as caught:
        sdk().messages.batches.create(requests=requests)

    assert caught.value.body["error"]["type"] == "billing_error"
    assert caught.value.body["error"]["code"] == "spend_cap_exceeded"
    assert sandbox_requests(world) == []
    assert not Batch.objects.exists()
    row = UsageRecord.objects.get()
    assert (row.endpoint, row.outcome, row.prompt_slug) == ("batch", "cap_exceeded", "support-summary")


def test_the_list_shows_the_clients_own_batches_newest_first_page_by_page(
    world, sdk, custodian, django_capture_on_commit_callbacks
):
    batch_seconds(world, 3600)
    client = sdk()
    with django_capture_on_commit_callbacks(execute=True):
        ids = [client.messages.batches.create(requests=tickets(1)).id for _ in range(3)]
        other, _ = key_services.api_client_create(
            actor=custodian, name="other-app", environment="production", owner=custodian, all_prompts=True,
            rate_limit_per_minute=1000,
        )  # fmt: skip
        sdk(other).messages.batches.create(requests=tickets(1))

    page = client.messages.batches.list(limit=2)
    assert [batch.id for batch in page.data] == ids[::-1][:2]
    assert (page.has_more, page.first_id, page.last_id) == (True, ids[2], ids[1])
    assert [batch.id for batch in client.messages.batches.list(limit=2)] == ids[::-1]  # the SDK pages on
    back = client.messages.batches.list(before_id=ids[0], limit=1)
    assert ([batch.id for batch in back.data], back.has_more) == ([ids[1]], True)
    assert all(batch.processing_status == "in_progress" for batch in page.data)
    with pytest.raises(anthropic.NotFoundError):
        client.messages.batches.retrieve(Batch.objects.get(api_client=other).public_id)
    with pytest.raises(anthropic.BadRequestError):
        client.messages.batches.list(limit=0)
