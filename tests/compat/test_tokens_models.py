"""count_tokens, models and Idempotency-Key on the Anthropic-compatible endpoint, through the SDK."""

from __future__ import annotations

import json

import anthropic
import pytest

from keys import services as key_services
from tests.gateway.upstream import EMAIL, PHONE, sandbox_requests
from usage.models import UsageRecord

pytestmark = pytest.mark.django_db


def test_count_tokens_counts_what_would_be_sent_and_has_a_ledger_row(world, sdk):
    counted = sdk().messages.count_tokens(
        model="prompt:support-summary", messages=[{"role": "user", "content": f"Call me on {PHONE}"}]
    )

    assert counted.input_tokens > 0
    sent = sandbox_requests(world)[-1]
    assert sent["path"].endswith("/v1/messages/count_tokens")
    assert world["version"].system_prompt in json.dumps(sent["body"])  # the approved system prompt is counted
    assert PHONE not in json.dumps(sent["body"])
    row = UsageRecord.objects.get()
    assert (row.endpoint, row.outcome, row.cost_usd) == ("count", "ok", 0)


def test_models_lists_the_prompts_and_free_form_models_a_client_may_name(world, sdk, freeform_client, custodian):
    prompt_bound = [model.id for model in sdk().models.list()]
    assert prompt_bound == ["prompt:support-summary"]

    free = [model.id for model in sdk(freeform_client).models.list()]
    assert free == ["claude-haiku-4-5", "claude-sonnet-4-6"]  # it may run no prompt
    assert sdk(freeform_client).models.retrieve("claude-haiku-4-5").id == "claude-haiku-4-5"
    with pytest.raises(anthropic.NotFoundError):
        sdk().models.retrieve("claude-haiku-4-5")

    key_services.api_client_update(
        actor=custodian, client=world["client"], reason="narrow", all_prompts=False, allowed_prompts=[]
    )
    assert [model.id for model in sdk().models.list()] == []


def test_an_idempotent_retry_replays_without_a_second_call(world, sdk):
    client = sdk()
    body = {"model": "prompt:support-summary", "max_tokens": 100, "messages": [{"role": "user", "content": EMAIL}]}
    first = client.messages.with_raw_response.create(**body, extra_headers={"Idempotency-Key": "k-1"})
    again = client.messages.with_raw_response.create(**body, extra_headers={"Idempotency-Key": "k-1"})
    streamed = []
    for _ in range(2):
        with client.messages.stream(**body, extra_headers={"Idempotency-Key": "k-2"}) as stream:
            streamed.append((stream.get_final_message(), stream.response.headers.get("Idempotent-Replayed")))

    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.parse().to_dict() == first.parse().to_dict()
    (original, _), (replayed, replay_header) = streamed
    assert replay_header == "true"
    assert replayed.to_dict() == original.to_dict()
    assert EMAIL in replayed.content[0].text
    assert len(sandbox_requests(world)) == 2
    with pytest.raises(anthropic.ConflictError):
        client.messages.create(**{**body, "max_tokens": 50}, extra_headers={"Idempotency-Key": "k-1"})
