"""The Anthropic-compatible endpoint's wire format (docs/anthropic.md): errors in Anthropic's shape, the
answer as Anthropic's Message with Tollgate's run id and the caller's values put back, and streams as
Anthropic's own event sequence, placeholders rehydrated across deltas."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from core.errors import DomainError
from core.problems import anthropic_error_body, domain_problem_body
from gateway.pipeline import Answer, Prepared, StreamWire, sse
from gateway.redaction.engine import Redaction, StreamRehydrator


def rehydrated_values(value: Any, redaction: Redaction) -> Any:
    """Every string in a JSON value with this request's placeholders put back (a tool call's input)."""
    if isinstance(value, str):
        return redaction.rehydrate(value)
    if isinstance(value, list):
        return [rehydrated_values(item, redaction) for item in value]
    if isinstance(value, dict):
        return {key: rehydrated_values(item, redaction) for key, item in value.items()}
    return value


def message_document(prepared: Prepared, answer: Answer) -> dict[str, Any]:
    """Anthropic's message as the caller gets it: its id Tollgate's run id (GET /api/v1/runs/{id}), text
    and tool inputs rehydrated."""
    message: dict[str, Any] = answer.message.to_dict()
    message["id"] = prepared.run_id
    message["content"] = [_block_rehydrated(block, prepared.redaction) for block in message.get("content", [])]
    return message


def _block_rehydrated(block: dict[str, Any], redaction: Redaction) -> dict[str, Any]:
    if block.get("type") == "text":
        return {**block, "text": redaction.rehydrate(block.get("text", ""))}
    if block.get("type") == "tool_use":
        return {**block, "input": rehydrated_values(block.get("input", {}), redaction)}
    return block


class _JsonStringRehydrator(StreamRehydrator):
    """For a tool call's input streamed as partial JSON: values are put back JSON-escaped."""

    def __init__(self, redaction: Redaction) -> None:
        escaped = {
            token: json.dumps(value, ensure_ascii=False)[1:-1] for token, value in redaction.by_placeholder.items()
        }
        super().__init__(Redaction(by_placeholder=escaped))


class AnthropicStreamWire(StreamWire):
    """Anthropic's event sequence: message_start (the run id as the message id), ping, content blocks with
    their deltas rehydrated (a placeholder cut across deltas is held back until complete), message_delta,
    and message_stop once the call is settled; an error event in Anthropic's shape on failure."""

    def __init__(self, prepared: Prepared) -> None:
        super().__init__(prepared)
        self.blocks: dict[int, StreamRehydrator] = {}
        self.held: list[bytes] = []  # the opening events, written with the first delta (one write, not three)

    def _with_held(self, event: bytes) -> bytes:
        written, self.held = b"".join([*self.held, event]), []
        return written

    def started(self) -> Iterator[bytes]:
        yield b""  # the answer's headers go out while the upstream call is made (the events come with its first delta)

    def event(self, event: Any) -> Iterator[bytes]:
        kind = event.type
        if kind == "message_start":
            data = event.to_dict()
            data["message"]["id"] = self.prepared.run_id
            self.held += [sse(kind, data), sse("ping", {"type": "ping"})]
        elif kind == "content_block_start":
            block = event.content_block
            redaction = self.prepared.redaction
            self.blocks[event.index] = (
                _JsonStringRehydrator(redaction) if block.type == "tool_use" else StreamRehydrator(redaction)
            )
            self.held.append(sse(kind, event.to_dict()))
        elif kind == "content_block_delta":
            data = event.to_dict()
            delta = data["delta"]
            rehydrator = self.blocks.get(event.index)
            field = {"text_delta": "text", "input_json_delta": "partial_json"}.get(delta["type"])
            if rehydrator is not None and field is not None:
                delta[field] = rehydrator.feed(delta[field])
                if not delta[field]:
                    return
            yield self._with_held(sse(kind, data))
        elif kind == "content_block_stop":
            yield self._with_held(self._tail(event.index) + sse(kind, {"type": kind, "index": event.index}))
        elif kind == "message_delta":
            yield self._with_held(sse(kind, event.to_dict()))
        # message_stop is written once the call is settled (completed)

    def _tail(self, index: int) -> bytes:
        """A block's held-back end (a `<` that never became a placeholder), as its last delta."""
        rehydrator = self.blocks.pop(index, None)
        tail = rehydrator.flush() if rehydrator is not None else ""
        if not tail:
            return b""
        delta = (
            {"type": "input_json_delta", "partial_json": tail}
            if isinstance(rehydrator, _JsonStringRehydrator)
            else {"type": "text_delta", "text": tail}
        )
        return sse("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})

    def completed(self, answer: Answer) -> Iterator[bytes]:
        yield self._with_held(sse("message_stop", {"type": "message_stop"}))

    def document(self, answer: Answer) -> dict[str, Any]:
        return message_document(self.prepared, answer)

    def failed(self, error: DomainError) -> bytes:
        return self._with_held(sse("error", anthropic_error_body(domain_problem_body(error))))


def message_events(message: dict[str, Any]) -> Iterator[bytes]:
    """A completed message as the events that stream it (an idempotent replay): each block whole."""
    usage = message.get("usage") or {}
    start = {**message, "content": [], "stop_reason": None, "stop_sequence": None,
             "usage": {**usage, "output_tokens": 0}}  # fmt: skip
    yield sse("message_start", {"type": "message_start", "message": start})
    for index, block in enumerate(message.get("content", [])):
        if block.get("type") == "tool_use":
            yield sse("content_block_start", {"type": "content_block_start", "index": index,
                                              "content_block": {**block, "input": {}}})  # fmt: skip
            delta = {"type": "input_json_delta", "partial_json": json.dumps(block.get("input", {}), ensure_ascii=False)}
        else:
            yield sse("content_block_start", {"type": "content_block_start", "index": index,
                                              "content_block": {**block, "text": ""}})  # fmt: skip
            delta = {"type": "text_delta", "text": block.get("text", "")}
        yield sse("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
        yield sse("content_block_stop", {"type": "content_block_stop", "index": index})
    yield sse("message_delta", {"type": "message_delta",
                                "delta": {"stop_reason": message.get("stop_reason"),
                                          "stop_sequence": message.get("stop_sequence")},
                                "usage": usage})  # fmt: skip
    yield sse("message_stop", {"type": "message_stop"})
