"""The Anthropic-compatible endpoint attacked where a Messages API body can carry something other than text:
tool calls' keys and numbers, tool definitions, media sources, large plain-text documents, tools that run at
Anthropic, values of the wrong type. Personal data never reaches the upstream nor a table, a call never
costs more than its reservation holds, and a body is never answered with a 500."""

from __future__ import annotations

import json

import pytest
from rest_framework.test import APIClient as HttpClient

from gateway.models import BatchItem
from keys import services as key_services
from tests.gateway.upstream import EMAIL, sandbox_requests
from usage.models import SpendReservation, UsageRecord

pytestmark = pytest.mark.django_db

CARD = 4111111111111111


def _http(client, custodian) -> HttpClient:
    _, token = key_services.api_token_issue(actor=custodian, client=client, label="t")
    http = HttpClient()
    http.credentials(HTTP_X_API_KEY=token)
    return http


@pytest.fixture
def callers(world, freeform_client, custodian):
    media, _ = key_services.api_client_create(
        actor=custodian, name="docs", environment="production", owner=custodian, rate_limit_per_minute=1000,
        freeform=True, freeform_models=["claude-haiku-4-5"], freeform_media=True, freeform_max_tokens=1000,
    )  # fmt: skip
    return {"prompt": world["http"], "free": _http(freeform_client, custodian), "media": _http(media, custodian)}


def _post(http, body, path="/anthropic/v1/messages"):
    return http.post(path, json.dumps(body), content_type="application/json")


def _body(mode: str, **fields) -> dict:
    model = "prompt:support-summary" if mode == "prompt" else "claude-haiku-4-5"
    return {"model": model, "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}], **fields}


def _tool_call(tool_input) -> list[dict]:
    return [
        {"role": "user", "content": "look it up"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "crm", "input": tool_input}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "done"}]},
    ]


@pytest.mark.parametrize("mode", ["prompt", "free"])
@pytest.mark.parametrize(
    "tool_input", [{EMAIL: "primary"}, {"card": CARD}, {"cards": [{"number": CARD}]}], ids=["key", "number", "nested"]
)
def test_personal_data_in_a_tool_call_input_sent_as_it_is_is_refused(world, callers, mode, tool_input):
    response = _post(callers[mode], _body(mode, messages=_tool_call(tool_input)))

    assert response.status_code == 400, response.content
    assert sandbox_requests(world) == []


def test_personal_data_in_a_batch_request_tool_call_is_neither_stored_nor_sent(world, callers):
    requests = [{"custom_id": "r1", "params": _body("prompt", messages=_tool_call({EMAIL: "primary"}))}]

    response = _post(callers["prompt"], {"requests": requests}, "/anthropic/v1/messages/batches")

    assert response.status_code == 400, response.content
    assert not BatchItem.objects.exists()
    assert sandbox_requests(world) == []


@pytest.mark.parametrize(
    "tools",
    [
        [{"name": "crm", "input_schema": {"type": "object", "properties": {EMAIL: {"type": "string"}}}}],
        [{"name": "crm", "input_schema": {"type": "object", "properties": {"c": {"type": "integer", "enum": [CARD]}}}}],
    ],
    ids=["key", "number"],
)
def test_personal_data_in_a_tool_definition_is_refused(world, callers, tools):
    response = _post(callers["free"], _body("free", tools=tools))

    assert response.status_code == 400, response.content
    assert sandbox_requests(world) == []


def test_a_content_document_has_its_text_redacted(world, callers):
    document = {"type": "document", "source": {"type": "content", "content": [{"type": "text", "text": f"to {EMAIL}"}]}}
    content = [document, {"type": "text", "text": "Summarise"}]

    response = _post(callers["media"], _body("free", messages=[{"role": "user", "content": content}]))

    assert response.status_code == 200, response.content
    sent = json.dumps(sandbox_requests(world))
    assert EMAIL not in sent
    assert "<EMAIL_1>" in sent


@pytest.mark.parametrize(
    "block",
    [
        {"type": "document", "source": {"type": "text", "media_type": f"text/plain; to={EMAIL}", "data": "x"}},
        {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "x", "note": EMAIL}},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBO", "alt": EMAIL}},
        {"type": "image", "source": {"type": "url", "url": f"https://files.example.com/{EMAIL}.png"}},
        {"type": "image", "source": {"type": "file", "file_id": EMAIL}},
    ],
    ids=["media-type", "document-extra-key", "image-extra-key", "url", "file-id"],
)
def test_a_media_source_carries_nothing_unredacted_beside_its_media(world, callers, block):
    content = [block, {"type": "text", "text": "Describe"}]

    response = _post(callers["media"], _body("free", messages=[{"role": "user", "content": content}]))

    assert response.status_code == 400, response.content
    assert sandbox_requests(world) == []


def test_a_large_plain_text_document_costs_no_more_than_its_reservation(world, callers):
    document = {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "word " * 190_000}}
    content = [document, {"type": "text", "text": "Summarise"}]

    response = _post(callers["media"], _body("free", messages=[{"role": "user", "content": content}]))

    assert response.status_code == 200, response.content
    row = UsageRecord.objects.get()
    assert row.input_tokens > 200_000  # more than a document's fixed allowance
    assert row.cost_usd <= SpendReservation.objects.get().amount_usd


@pytest.mark.parametrize(
    "tool",
    [
        {"type": "web_search_20250305", "name": "web_search", "max_uses": 50},
        {"type": "code_execution_20250825", "name": "code_execution"},
        {"type": "bash_20250124", "name": "bash"},
        {"type": "text", "name": "crm", "text": ""},
    ],
    ids=["web-search", "code-execution", "bash", "typed-as-text"],
)
def test_a_tool_whose_cost_the_body_does_not_bound_is_refused(world, callers, tool):
    response = _post(callers["free"], _body("free", tools=[tool]))

    assert response.status_code == 400, response.content
    assert sandbox_requests(world) == []
    assert not SpendReservation.objects.exists()


@pytest.mark.parametrize("role", [["user"], {"role": "user"}])
@pytest.mark.parametrize("mode", ["prompt", "free"])
def test_a_role_that_is_not_a_string_is_a_bad_request(world, callers, mode, role):
    response = _post(callers[mode], _body(mode, messages=[{"role": role, "content": "hi"}]))

    assert response.status_code == 400, response.content
    assert response.json()["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    "source",
    [{"type": ["base64"]}, {"type": "base64", "media_type": ["image/png"], "data": "iVBO"}, []],
    ids=["type-list", "media-type-list", "list"],
)
def test_a_media_source_of_the_wrong_shape_is_a_bad_request(world, callers, source):
    content = [{"type": "image", "source": source}, {"type": "text", "text": "Describe"}]

    response = _post(callers["media"], _body("free", messages=[{"role": "user", "content": content}]))

    assert response.status_code == 400, response.content
    assert sandbox_requests(world) == []


def test_a_count_of_a_body_anthropic_refuses_is_a_bad_request_with_a_ledger_row(world, callers):
    block = {"type": "text", "text": "a", "cache_control": {"type": "ephemeral"}}
    body = {"model": "prompt:support-summary", "messages": [{"role": "user", "content": [block] * 5}]}

    response = _post(callers["prompt"], body, "/anthropic/v1/messages/count_tokens")

    assert response.status_code == 400, response.content  # the caller's to fix: not a 5xx the SDK retries
    assert response.json()["error"]["code"] == "upstream_refused"
    assert list(UsageRecord.objects.values_list("endpoint", "outcome")) == [("count", "client_error")]
