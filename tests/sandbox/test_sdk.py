"""The official anthropic SDK, sync and async, runs unchanged against the sandbox."""

from __future__ import annotations

import asyncio
import time

import anthropic
import pytest

from sandbox.server import SandboxServer

MODEL = "claude-sonnet-4-6"
LONG_SYSTEM = "You are a careful assistant. " * 200  # 5,800 characters: 1,450 tokens, above Sonnet's 1,024


def client(sandbox: SandboxServer, **kwargs) -> anthropic.Anthropic:
    return anthropic.Anthropic(api_key="sk-ant-test-key", base_url=sandbox.url, **kwargs)


def async_client(sandbox: SandboxServer, **kwargs) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(api_key="sk-ant-test-key", base_url=sandbox.url, **kwargs)


def inject(sandbox: SandboxServer, **fault) -> None:
    import httpx2

    httpx2.post(f"{sandbox.url}/_sandbox/faults", json=fault).raise_for_status()


def recorded(sandbox: SandboxServer) -> list[dict]:
    import httpx2

    return httpx2.get(f"{sandbox.url}/_sandbox/requests").json()["requests"]


def test_create_echoes_the_last_user_message(sandbox):
    message = client(sandbox).messages.create(
        model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "Summarise ticket 42 for <EMAIL_1>"}]
    )

    assert isinstance(message, anthropic.types.Message)
    assert message.content[0].text == "Summarise ticket 42 for <EMAIL_1>"
    assert message.model == "claude-sonnet-4-6"
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens == 9  # 34 characters, 4 to a token
    assert message.usage.output_tokens == 9
    assert message._request_id.startswith("req_")


def test_max_tokens_and_stop_sequences_cut_the_output(sandbox):
    api = client(sandbox)
    cut = api.messages.create(model=MODEL, max_tokens=2, messages=[{"role": "user", "content": "one two three"}])
    stopped = api.messages.create(
        model=MODEL, max_tokens=50, stop_sequences=["three"], messages=[{"role": "user", "content": "one two three"}]
    )

    assert (cut.content[0].text, cut.stop_reason, cut.usage.output_tokens) == ("one two ", "max_tokens", 2)
    assert (stopped.content[0].text, stopped.stop_reason, stopped.stop_sequence) == (
        "one two ",
        "stop_sequence",
        "three",
    )


def test_async_create(sandbox):
    async def run() -> anthropic.types.Message:
        async with async_client(sandbox) as api:
            return await api.messages.create(
                model="claude-haiku-4-5", max_tokens=50, messages=[{"role": "user", "content": "async hello"}]
            )

    message = asyncio.run(run())

    assert message.content[0].text == "async hello"
    assert message.model == "claude-haiku-4-5-20251001"


def test_stream_delivers_text_and_final_message(sandbox):
    text = "A reply long enough to arrive in several chunks of sixteen characters."
    with client(sandbox).messages.stream(
        model=MODEL, max_tokens=200, messages=[{"role": "user", "content": text}]
    ) as stream:
        chunks = list(stream.text_stream)
        final = stream.get_final_message()

    assert len(chunks) == 5
    assert "".join(chunks) == text
    assert final.content[0].text == text
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 18
    assert final.usage.input_tokens == 18


def test_async_stream(sandbox):
    async def run() -> tuple[list[str], anthropic.types.Message]:
        async with (
            async_client(sandbox) as api,
            api.messages.stream(model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "streamed"}]) as s,
        ):
            return [chunk async for chunk in s.text_stream], await s.get_final_message()

    chunks, final = asyncio.run(run())

    assert "".join(chunks) == "streamed"
    assert final.usage.output_tokens == 2


def test_count_tokens_matches_what_create_bills(sandbox):
    api = client(sandbox)
    params = {
        "model": MODEL,
        "system": [{"type": "text", "text": LONG_SYSTEM, "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": "How many tokens?"}],
    }
    counted = api.messages.count_tokens(**params)
    usage = api.messages.create(max_tokens=10, **params).usage

    assert counted.input_tokens == 1454
    assert counted.input_tokens == (
        usage.input_tokens + usage.cache_creation_input_tokens + usage.cache_read_input_tokens
    )


def test_prompt_cache_is_written_then_read(sandbox):
    api = client(sandbox)
    system = [{"type": "text", "text": LONG_SYSTEM, "cache_control": {"type": "ephemeral"}}]

    first = api.messages.create(model=MODEL, max_tokens=10, system=system, messages=[{"role": "user", "content": "a"}])
    second = api.messages.create(model=MODEL, max_tokens=10, system=system, messages=[{"role": "user", "content": "b"}])

    assert first.usage.cache_creation_input_tokens == 1450
    assert first.usage.cache_creation.ephemeral_5m_input_tokens == 1450
    assert first.usage.cache_read_input_tokens == 0
    assert first.usage.input_tokens == 1
    assert second.usage.cache_creation_input_tokens == 0
    assert second.usage.cache_read_input_tokens == 1450
    assert second.usage.input_tokens == 1


def test_cache_entries_expire_by_their_ttl(sandbox):
    import httpx2

    api = client(sandbox)
    five_min = [{"type": "text", "text": LONG_SYSTEM, "cache_control": {"type": "ephemeral", "ttl": "5m"}}]
    one_hour = [{"type": "text", "text": "Other. " + LONG_SYSTEM, "cache_control": {"type": "ephemeral", "ttl": "1h"}}]
    messages = [{"role": "user", "content": "x"}]
    for system in (five_min, one_hour):
        api.messages.create(model=MODEL, max_tokens=5, system=system, messages=messages)

    httpx2.post(f"{sandbox.url}/_sandbox/clock", json={"advance_seconds": 301}).raise_for_status()
    after_5m = api.messages.create(model=MODEL, max_tokens=5, system=five_min, messages=messages).usage
    after_1h = api.messages.create(model=MODEL, max_tokens=5, system=one_hour, messages=messages).usage

    assert (after_5m.cache_read_input_tokens, after_5m.cache_creation_input_tokens) == (0, 1450)
    assert after_1h.cache_read_input_tokens == 1452
    assert after_1h.cache_creation.ephemeral_1h_input_tokens == 0


def test_nothing_is_cached_below_the_model_minimum(sandbox):
    api = client(sandbox)
    # Haiku 4.5 caches from 4,096 tokens; this prefix has 1,450.
    system = [{"type": "text", "text": LONG_SYSTEM, "cache_control": {"type": "ephemeral"}}]
    for _ in range(2):
        usage = api.messages.create(
            model="claude-haiku-4-5", max_tokens=5, system=system, messages=[{"role": "user", "content": "x"}]
        ).usage
        assert (usage.cache_creation_input_tokens, usage.cache_read_input_tokens) == (0, 0)
        assert usage.input_tokens == 1451


@pytest.mark.parametrize(
    ("fault", "exception"),
    [
        ({"status": 429}, anthropic.RateLimitError),
        ({"status": 500}, anthropic.InternalServerError),
        ({"status": 529}, anthropic.OverloadedError),
        ({"status": "disconnect"}, anthropic.APIConnectionError),
        ({"status": "timeout", "seconds": 3}, anthropic.APITimeoutError),
    ],
)
def test_injected_faults_raise_the_sdks_own_exceptions(sandbox, fault, exception):
    inject(sandbox, **fault)

    with pytest.raises(exception):
        client(sandbox, max_retries=0, timeout=1.0).messages.create(
            model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )


def test_rate_limit_errors_carry_the_documented_body_and_headers(sandbox):
    inject(sandbox, status=429)

    with pytest.raises(anthropic.RateLimitError) as caught:
        client(sandbox, max_retries=0).messages.create(
            model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )

    assert caught.value.status_code == 429
    assert caught.value.body["error"]["type"] == "rate_limit_error"
    assert caught.value.response.headers["retry-after"] == "1"
    assert caught.value.request_id.startswith("req_")


def test_stream_error_mid_stream_raises_with_the_error_type(sandbox):
    inject(sandbox, status="stream_error")

    stream = client(sandbox, max_retries=0).messages.stream(
        model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "x" * 100}]
    )
    with pytest.raises(anthropic.APIStatusError) as caught, stream as events:
        for _ in events.text_stream:
            pass

    assert caught.value.status_code == 200
    assert caught.value.type == "overloaded_error"


def test_two_overloads_are_absorbed_by_the_sdks_retries(sandbox):
    inject(sandbox, status=529, count=2)

    message = client(sandbox).messages.create(model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "ok"}])

    assert message.content[0].text == "ok"
    assert [request["retry_count"] for request in recorded(sandbox)] == [0, 1, 2]


def test_bad_requests_raise_client_errors(sandbox):
    api = client(sandbox, max_retries=0)
    messages = [{"role": "user", "content": "hi"}]

    with pytest.raises(anthropic.NotFoundError):
        api.messages.create(model="claude-nonexistent", max_tokens=10, messages=messages)
    with pytest.raises(anthropic.BadRequestError, match="temperature"):
        api.messages.create(model=MODEL, max_tokens=10, messages=messages, extra_body={"temperature": 0.5})
    with pytest.raises(anthropic.AuthenticationError):
        anthropic.Anthropic(api_key="sk-ant-invalid", base_url=sandbox.url, max_retries=0).messages.create(
            model=MODEL, max_tokens=10, messages=messages
        )


def wait_until_ended(api: anthropic.Anthropic, batch_id: str) -> anthropic.types.messages.MessageBatch:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        batch = api.messages.batches.retrieve(batch_id)
        if batch.processing_status == "ended":
            return batch
        time.sleep(0.05)
    raise AssertionError("batch did not end")


def test_batch_from_create_to_results(sandbox):
    api = client(sandbox)
    batch = api.messages.batches.create(
        requests=[
            {
                "custom_id": "ok-1",
                "params": {"model": MODEL, "max_tokens": 50, "messages": [{"role": "user", "content": "first"}]},
            },
            {
                "custom_id": "ok-2",
                "params": {"model": MODEL, "max_tokens": 50, "messages": [{"role": "user", "content": "second"}]},
            },
            {
                "custom_id": "bad",
                "params": {"model": MODEL, "messages": [{"role": "user", "content": "no max_tokens"}]},
            },
        ]
    )
    assert batch.processing_status == "in_progress"
    assert batch.request_counts.processing == 3

    ended = wait_until_ended(api, batch.id)
    results = {result.custom_id: result.result for result in api.messages.batches.results(batch.id)}

    assert ended.request_counts.succeeded == 2
    assert ended.request_counts.errored == 1
    assert ended.results_url == f"{sandbox.url}/v1/messages/batches/{batch.id}/results"
    assert results["ok-1"].type == "succeeded"
    assert results["ok-1"].message.content[0].text == "first"
    assert results["ok-1"].message.usage.service_tier == "batch"
    assert results["bad"].type == "errored"
    assert results["bad"].error.error.type == "invalid_request_error"


def test_async_batch_results(sandbox):
    async def run() -> list[str]:
        async with async_client(sandbox) as api:
            batch = await api.messages.batches.create(
                requests=[
                    {
                        "custom_id": "a",
                        "params": {"model": MODEL, "max_tokens": 5, "messages": [{"role": "user", "content": "async"}]},
                    }
                ]
            )
            while (await api.messages.batches.retrieve(batch.id)).processing_status != "ended":
                await asyncio.sleep(0.05)
            return [result.result.type async for result in await api.messages.batches.results(batch.id)]

    assert asyncio.run(run()) == ["succeeded"]


def test_batch_cancel_list_and_delete(sandbox):
    api = client(sandbox)
    params = {"model": MODEL, "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}
    first = api.messages.batches.create(requests=[{"custom_id": "a", "params": params}])
    second = api.messages.batches.create(requests=[{"custom_id": "b", "params": params}])

    canceling = api.messages.batches.cancel(second.id)
    with pytest.raises(anthropic.BadRequestError):
        api.messages.batches.delete(second.id)
    listed = [batch.id for batch in api.messages.batches.list(limit=1)]
    ended = wait_until_ended(api, second.id)
    deleted = api.messages.batches.delete(second.id)

    assert canceling.processing_status == "canceling"
    assert ended.request_counts.canceled == 1
    assert listed == [second.id, first.id]  # newest first, followed across pages
    assert deleted.type == "message_batch_deleted"
    with pytest.raises(anthropic.NotFoundError):
        api.messages.batches.retrieve(second.id)


def test_an_expired_batch_reports_every_request_expired(sandbox):
    import httpx2

    api = client(sandbox)
    batch = api.messages.batches.create(
        requests=[
            {
                "custom_id": "late",
                "params": {"model": MODEL, "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]},
            }
        ]
    )
    httpx2.post(f"{sandbox.url}/_sandbox/batches/{batch.id}/expire").raise_for_status()

    ended = api.messages.batches.retrieve(batch.id)

    assert ended.request_counts.expired == 1
    assert [result.result.type for result in api.messages.batches.results(batch.id)] == ["expired"]
