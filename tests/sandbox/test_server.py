"""The sandbox at the HTTP level: what the SDK tests do not show."""

from __future__ import annotations

import httpx2
import pytest

OLD = {"x-api-key": "sk-ant-old-style", "anthropic-version": "2023-06-01"}
BODY = {"model": "claude-haiku-4-5", "max_tokens": 20, "messages": [{"role": "user", "content": "hello"}]}


def post(sandbox, path="/v1/messages", json=None, headers=None):
    return httpx2.post(
        f"{sandbox.url}{path}", json=BODY if json is None else json, headers=OLD if headers is None else headers
    )


def test_old_sdks_x_api_key_and_version_are_accepted_with_rate_limit_headers(sandbox):
    response = post(sandbox)

    assert response.status_code == 200
    assert response.headers["request-id"].startswith("req_")
    assert int(response.headers["anthropic-ratelimit-requests-remaining"]) < int(
        response.headers["anthropic-ratelimit-requests-limit"]
    )
    assert response.headers["anthropic-ratelimit-tokens-reset"].endswith("Z")


def test_old_api_version_still_takes_sampling_parameters(sandbox):
    assert post(sandbox, json={**BODY, "temperature": 0.2}).status_code == 200


@pytest.mark.parametrize(
    ("headers", "status", "error_type"),
    [
        ({"anthropic-version": "2023-06-01"}, 401, "authentication_error"),
        ({"x-api-key": "k"}, 400, "invalid_request_error"),
        ({**OLD, "anthropic-version": "1999-01-01"}, 400, "invalid_request_error"),
        ({**OLD, "anthropic-beta": "prompt-caching-2024-07-31,made-up-beta"}, 400, "invalid_request_error"),
    ],
)
def test_header_problems_get_the_documented_error_body(sandbox, headers, status, error_type):
    response = post(sandbox, headers=headers)

    assert response.status_code == status
    body = response.json()
    assert body["type"] == "error"
    assert body["error"]["type"] == error_type
    assert body["request_id"] == response.headers["request-id"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({**BODY, "max_tokens": -1}, "max_tokens"),
        ({**BODY, "max_tokens": 10**6}, "maximum allowed number of output tokens"),
        ({**BODY, "messages": []}, "messages"),
        ({**BODY, "unknown": 1}, "Extra inputs are not permitted"),
        ({**BODY, "system": [{"type": "text", "text": "x", "cache_control": {"type": "forever"}}]}, "ephemeral"),
    ],
)
def test_invalid_bodies_are_refused_with_a_reason(sandbox, body, message):
    response = post(sandbox, json=body)

    assert response.status_code == 400
    assert message in response.json()["error"]["message"]


def test_max_tokens_zero_is_allowed(sandbox):
    response = post(sandbox, json={**BODY, "max_tokens": 0})

    assert response.status_code == 200
    assert response.json()["content"] == []
    assert response.json()["stop_reason"] == "max_tokens"


def test_recorded_requests_show_bodies_but_never_keys(sandbox):
    canary = "sk-ant-canary-0b6e2a"
    post(sandbox, headers={"x-api-key": canary, "anthropic-version": "2023-06-01"})
    httpx2.post(
        f"{sandbox.url}/v1/messages",
        json=BODY,
        headers={"Authorization": f"Bearer {canary}", "anthropic-version": "2026-10-21"},
    )

    listing = httpx2.get(f"{sandbox.url}/_sandbox/requests")

    assert [request["body"] for request in listing.json()["requests"]] == [BODY, BODY]
    assert canary not in listing.text


def test_latency_can_be_added_at_run_time(sandbox):
    httpx2.post(f"{sandbox.url}/_sandbox/latency", json={"ms": 150}).raise_for_status()

    response = post(sandbox)

    assert response.elapsed.total_seconds() >= 0.15


def test_faults_are_consumed_in_order_and_reset_clears_them(sandbox):
    httpx2.post(f"{sandbox.url}/_sandbox/faults", json={"status": 500, "count": 1}).raise_for_status()
    httpx2.post(f"{sandbox.url}/_sandbox/faults", json={"status": 529, "count": 2}).raise_for_status()

    statuses = [post(sandbox).status_code for _ in range(2)]
    httpx2.post(f"{sandbox.url}/_sandbox/reset").raise_for_status()

    assert statuses == [500, 529]
    assert post(sandbox).status_code == 200


def test_a_bad_fault_request_is_refused(sandbox):
    assert httpx2.post(f"{sandbox.url}/_sandbox/faults", json={"status": 418}).status_code == 400


def test_cache_minimums_are_configurable_per_model(sandbox):
    httpx2.post(f"{sandbox.url}/_sandbox/config", json={"cache_min_tokens": {"claude-haiku-4-5": 1}})
    system = [{"type": "text", "text": "short but cached", "cache_control": {"type": "ephemeral", "ttl": "1h"}}]

    usage = post(sandbox, json={**BODY, "system": system}).json()["usage"]

    assert usage["cache_creation_input_tokens"] == 4
    assert usage["cache_creation"] == {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 4}


def test_rate_limit_mode_refuses_beyond_the_limit_with_retry_after(sandbox):
    httpx2.post(f"{sandbox.url}/_sandbox/ratelimit", json={"rpm": 2}).raise_for_status()

    answers = [post(sandbox) for _ in range(3)]
    state = httpx2.get(f"{sandbox.url}/_sandbox/ratelimit").json()
    off = httpx2.post(f"{sandbox.url}/_sandbox/ratelimit", json={"rpm": 0}).json()

    assert [answer.status_code for answer in answers] == [200, 200, 429]
    assert answers[2].json()["error"]["type"] == "rate_limit_error"
    assert 55 <= int(answers[2].headers["retry-after"]) <= 60  # until the first admitted request leaves the window
    assert state == {"rpm": 2, "rate_limited": 1}
    assert off == {"rpm": 0, "rate_limited": 0}
    assert post(sandbox).status_code == 200
    assert httpx2.post(f"{sandbox.url}/_sandbox/ratelimit", json={"rpm": -1}).status_code == 400
