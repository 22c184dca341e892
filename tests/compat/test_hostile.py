"""The Anthropic-compatible endpoint attacked with generated bodies: personal data planted anywhere a
Messages API body can carry text never reaches the upstream nor any table (the caller gets it back); a
body mutated in any way is answered 200 or a documented 4xx — never a 500 — and an upstream call happens
only for a 200, with exactly one ledger row per upstream call."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.apps import apps
from django.db import transaction
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from rest_framework.test import APIClient as HttpClient

from keys import services as key_services
from tests.gateway.test_pii_invariant import _leaks, pii
from tests.gateway.upstream import sandbox_requests
from usage.models import SpendReservation, UsageRecord

pytestmark = pytest.mark.django_db
SETTINGS = hypothesis_settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,
)


@pytest.fixture
def callers(world, freeform_client, custodian):
    _, token = key_services.api_token_issue(actor=custodian, client=freeform_client, label="t")
    free = HttpClient()
    free.credentials(HTTP_X_API_KEY=token)
    return {"prompt": world["http"], "free": free}


def _post(http, body):
    return http.post("/anthropic/v1/messages", json.dumps(body), content_type="application/json")


def _stored_text() -> str:
    rows: list[dict[str, Any]] = []
    for model in apps.get_models():
        if model._meta.app_label in ("gateway", "prompts", "usage", "keys", "audit") and not model._meta.proxy:
            rows.extend(model._default_manager.values())
    return json.dumps(rows, default=str, ensure_ascii=False)


def _isolated(world, example):
    world["sandbox"].call(lambda state: state.reset())
    with transaction.atomic():  # each example leaves nothing behind for the next to find
        try:
            example()
        finally:
            transaction.set_rollback(True)


def _body(mode: str, planted: list[str], stream: bool) -> dict:
    a, b, c, d, e = planted
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": f"Hello, I am {a}."},
        {"role": "assistant", "content": [{"type": "text", "text": "Noted."}]}
        if mode == "prompt"
        else {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "t_1", "name": "crm", "input": {"who": [b]}}],
        },
        {
            "role": "user",
            "content": [
                {"type": "text", "text": f"also {b}"}
                if mode == "prompt"
                else {"type": "tool_result", "tool_use_id": "t_1", "content": [{"type": "text", "text": f"row: {c}"}]},
                {"type": "text", "text": f"Reply to {d} and {a}"},
            ],
        },
    ]
    body: dict[str, Any] = {"model": "prompt:support-summary" if mode == "prompt" else "claude-haiku-4-5",
                            "max_tokens": 400, "messages": messages, "stream": stream}  # fmt: skip
    if mode == "free":
        body["system"] = [{"type": "text", "text": f"You assist {e}."}]
    return body


def test_personal_data_anywhere_in_a_body_never_leaves(world, callers):
    @SETTINGS
    @given(
        planted=st.lists(pii, min_size=5, max_size=5), mode=st.sampled_from(["prompt", "free"]), stream=st.booleans()
    )
    def check(planted, mode, stream):
        def example():
            response = _post(callers[mode], _body(mode, [value for value, _ in planted], stream))
            assert response.status_code == 200, response.content
            answer = b"".join(response.streaming_content).decode() if stream else response.content.decode()
            assert json.dumps(planted[3][0], ensure_ascii=False)[1:-1] in answer  # rehydrated for the caller
            sent = json.dumps(sandbox_requests(world), ensure_ascii=False)
            stored = _stored_text()
            for value, core in planted:
                assert not _leaks(sent, value, core), f"{value!r} reached the upstream"
                assert not _leaks(stored, value, core), f"{value!r} is stored in clear"

        _isolated(world, example)

    check()


GOOD = {"model": "prompt:support-summary", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}
junk = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 10**7) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
    max_leaves=8,
)
FIELDS = ["model", "max_tokens", "messages", "system", "stream", "metadata", "tools", "tool_choice", "temperature",
          "stop_sequences", "thinking", "top_k", "service_tier"]  # fmt: skip


@st.composite
def mutated_bodies(draw):
    body = json.loads(json.dumps(GOOD))
    if draw(st.booleans()):
        body["model"] = draw(st.sampled_from(["prompt:support-summary", "claude-haiku-4-5", "prompt:", "prompt:x"]))
    for _ in range(draw(st.integers(1, 3))):
        action = draw(st.sampled_from(["set", "drop", "block", "message"]))
        if action == "set":
            body[draw(st.sampled_from(FIELDS))] = draw(junk)
        elif action == "drop":
            body.pop(draw(st.sampled_from(FIELDS)), None)
        elif action == "block":
            body["messages"] = [{"role": "user", "content": [draw(st.fixed_dictionaries(
                {"type": st.sampled_from(["text", "image", "document", "tool_use", "tool_result", "thinking", "x"])},
                optional={"text": junk, "source": junk, "id": junk, "input": junk, "content": junk, "tool_use_id": junk,
                          "cache_control": junk, "name": junk},
            ))]}]  # fmt: skip
        else:
            body["messages"] = draw(st.lists(st.fixed_dictionaries(
                {"role": st.sampled_from(["user", "assistant", "system", 3])}, optional={"content": junk}
            ), max_size=3))  # fmt: skip
    return body


def test_mutated_bodies_get_a_documented_answer_and_a_ledger_row_per_upstream_call(world, callers):
    documented = {200, 400, 403, 404}

    @SETTINGS
    @given(body=mutated_bodies(), mode=st.sampled_from(["prompt", "free"]))
    def check(body, mode):
        def example():
            response = _post(callers[mode], body)
            assert response.status_code in documented, response.content
            if response.status_code == 200 and body.get("stream") is True:
                b"".join(response.streaming_content)
            calls = [r for r in sandbox_requests(world) if r["path"] == "/v1/messages"]
            if response.status_code != 200:
                assert response.json()["type"] == "error"
                assert response.json()["error"]["code"]
                assert calls == []
                assert not SpendReservation.objects.exists()
            assert UsageRecord.objects.exclude(outcome="cap_exceeded").count() == len(calls)
            assert not SpendReservation.objects.filter(status="held").exists()

        _isolated(world, example)

    check()


SMUGGLED = "jane.doe@example.com"


@pytest.mark.parametrize(
    "where",
    [
        {"messages": [{"role": "user", "content": [{"type": "text", "text": "hi",
                                                     "cache_control": {"type": "ephemeral", "note": SMUGGLED}}]}]},
        {"messages": [{"role": "user", "content": [{"type": "text", "text": "hi",
                                                     "citations": [{"cited_text": SMUGGLED}]}]}]},
        {"system": [{"type": "text", "text": "x", "cache_control": {"type": SMUGGLED}}]},
        {"tools": [{"name": "crm", "description": f"writes to {SMUGGLED}", "input_schema": {"type": "object"}}]},
        {"stop_sequences": [SMUGGLED]},
        {"tool_choice": {"type": "tool", "name": SMUGGLED}},
        {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": [
            {"type": "tool_use", "id": SMUGGLED, "name": "crm", "input": {}}]}]},
        {"messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "x",
                                                     "is_error": SMUGGLED}]}]},
        {"messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "url", "url": SMUGGLED}}]}]},
        {"metadata": {"user_id": "u1", "note": SMUGGLED}},
    ],
)  # fmt: skip
def test_personal_data_smuggled_where_text_is_not_redacted_is_refused(world, callers, where):
    body = {"model": "claude-haiku-4-5", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}], **where}

    response = _post(callers["free"], body)

    assert response.status_code in (400, 403), response.content
    assert sandbox_requests(world) == []


def test_a_client_allowed_media_still_gets_the_texts_around_them_redacted(world, sdk, custodian):
    client, _ = key_services.api_client_create(
        actor=custodian, name="docs", environment="production", owner=custodian, freeform=True,
        freeform_models=["claude-haiku-4-5"], freeform_media=True,
    )  # fmt: skip
    document = {
        "type": "document",
        "source": {"type": "text", "media_type": "text/plain", "data": f"Contact {SMUGGLED} today."},
        "title": f"Letter to {SMUGGLED}",
        "context": f"from {SMUGGLED}",
    }

    sdk(client).messages.create(
        model="claude-haiku-4-5", max_tokens=50,
        messages=[{"role": "user", "content": [document, {"type": "text", "text": "Summarise"}]}],
    )  # fmt: skip

    sent = json.dumps(sandbox_requests(world))
    assert SMUGGLED not in sent
    assert "<EMAIL_1>" in sent
