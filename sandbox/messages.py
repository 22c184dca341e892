"""The Messages API as the sandbox answers it: validation, deterministic tokens and output, caching.

Pure functions over plain JSON values; the HTTP layer lives in `sandbox.server`.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

from sandbox.catalog import MODELS, SAMPLING_REMOVED_IN
from sandbox.state import SandboxState, new_id

MAX_CACHE_BREAKPOINTS = 4
CACHE_TTLS = {"5m": 300.0, "1h": 3600.0}

_CREATE_FIELDS = {
    "model",
    "max_tokens",
    "system",
    "messages",
    "stop_sequences",
    "metadata",
    "stream",
    "tools",
    "tool_choice",
    "thinking",
    "output_config",
    "service_tier",
}
_SAMPLING_FIELDS = {"temperature", "top_p", "top_k"}
_COUNT_FIELDS = {"model", "messages", "system", "tools", "tool_choice", "thinking"}


class ApiError(Exception):
    """An error the API answers with: HTTP status, `error.type` and message."""

    def __init__(self, status: int, error_type: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message


def invalid(message: str) -> ApiError:
    return ApiError(400, "invalid_request_error", message)


def count_tokens(text: str) -> int:
    """Deterministic stand-in for the tokenizer: one token per four characters, rounded up."""
    return math.ceil(len(text) / 4)


@dataclass(frozen=True)
class Segment:
    """One block of the prompt, in cache-prefix order (tools, then system, then messages)."""

    tokens: int
    digest_source: str
    cache_ttl: str | None  # "5m" / "1h" when the block is a cache breakpoint


def _cache_ttl(block: dict[str, Any], where: str) -> str | None:
    control = block.get("cache_control")
    if control is None:
        return None
    if not isinstance(control, dict) or control.get("type") != "ephemeral":
        raise invalid(f"{where}.cache_control.type: Input should be 'ephemeral'")
    ttl = control.get("ttl", "5m")
    if ttl not in CACHE_TTLS:
        raise invalid(f"{where}.cache_control.ttl: Input should be '5m' or '1h'")
    return str(ttl)


def _block_text(block: dict[str, Any]) -> str:
    if block.get("type") == "text":
        return str(block.get("text", ""))
    return json.dumps({k: v for k, v in block.items() if k != "cache_control"}, sort_keys=True)


def _segments(body: dict[str, Any]) -> list[Segment]:
    segments: list[Segment] = []
    tools = body.get("tools") or []
    if not isinstance(tools, list):
        raise invalid("tools: Input should be a valid list")
    for index, tool in enumerate(tools):
        if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
            raise invalid(f"tools.{index}.name: Field required")
        text = json.dumps({k: v for k, v in tool.items() if k != "cache_control"}, sort_keys=True)
        segments.append(Segment(count_tokens(text), "tool:" + text, _cache_ttl(tool, f"tools.{index}")))

    system = body.get("system")
    if isinstance(system, str):
        if system:
            segments.append(Segment(count_tokens(system), "system:" + system, None))
    elif isinstance(system, list):
        for index, block in enumerate(system):
            if not isinstance(block, dict) or block.get("type") != "text" or not isinstance(block.get("text"), str):
                raise invalid(f"system.{index}: Input should be a text block")
            text = block["text"]
            segments.append(Segment(count_tokens(text), "system:" + text, _cache_ttl(block, f"system.{index}")))
    elif system is not None:
        raise invalid("system: Input should be a valid string or list of text blocks")

    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise invalid("messages: Field required and must be a non-empty list")
    for m_index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            raise invalid(f"messages.{m_index}.role: Input should be 'user' or 'assistant'")
        content = message.get("content")
        if isinstance(content, str):
            segments.append(Segment(count_tokens(content), f"{message['role']}:{content}", None))
        elif isinstance(content, list):
            for b_index, block in enumerate(content):
                if not isinstance(block, dict) or not isinstance(block.get("type"), str):
                    raise invalid(f"messages.{m_index}.content.{b_index}.type: Field required")
                text = _block_text(block)
                where = f"messages.{m_index}.content.{b_index}"
                segments.append(Segment(count_tokens(text), f"{message['role']}:{text}", _cache_ttl(block, where)))
        else:
            raise invalid(f"messages.{m_index}.content: Input should be a valid string or list of blocks")
    if sum(1 for segment in segments if segment.cache_ttl) > MAX_CACHE_BREAKPOINTS:
        found = sum(1 for segment in segments if segment.cache_ttl)
        raise invalid(f"A maximum of {MAX_CACHE_BREAKPOINTS} blocks with cache_control may be provided. Found {found}.")
    return segments


def _model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise invalid("model: Field required")
    if model not in MODELS:
        raise ApiError(404, "not_found_error", f"model: {model}")
    return model


def _check_fields(body: Any, allowed: set[str], api_version: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise invalid("The request body must be a JSON object.")
    if api_version < SAMPLING_REMOVED_IN:
        allowed = allowed | _SAMPLING_FIELDS
    for key in body:
        if key not in allowed:
            raise invalid(f"{key}: Extra inputs are not permitted")
    return body


def validate_create(raw: Any, api_version: str) -> dict[str, Any]:
    """The body of POST /v1/messages, checked as the API checks it; raises ApiError."""
    body = _check_fields(raw, _CREATE_FIELDS, api_version)
    model = _model(body)
    max_tokens = body.get("max_tokens")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int):
        raise invalid("max_tokens: Field required")
    if max_tokens < 0:
        raise invalid("max_tokens: Input should be greater than or equal to 0")
    limit = MODELS[model].max_output_tokens
    if max_tokens > limit:
        raise invalid(
            f"max_tokens: {max_tokens} > {limit}, which is the maximum allowed number of output tokens for {model}"
        )
    stops = body.get("stop_sequences", [])
    if not isinstance(stops, list) or not all(isinstance(stop, str) and stop for stop in stops):
        raise invalid("stop_sequences: Input should be a list of non-empty strings")
    metadata = body.get("metadata", {})
    if not isinstance(metadata, dict) or not isinstance(metadata.get("user_id", ""), str | None):
        raise invalid("metadata.user_id: Input should be a valid string")
    if "stream" in body and not isinstance(body["stream"], bool):
        raise invalid("stream: Input should be a valid boolean")
    _segments(body)
    return body


def validate_count(raw: Any, api_version: str) -> dict[str, Any]:
    body = _check_fields(raw, _COUNT_FIELDS, api_version)
    _model(body)
    _segments(body)
    return body


def count_input_tokens(body: dict[str, Any]) -> int:
    return sum(segment.tokens for segment in _segments(body))


def _usage(state: SandboxState, body: dict[str, Any], scope: str) -> dict[str, Any]:
    """Token usage with prompt caching as the API accounts it.

    The longest cached prefix that ends at a breakpoint is read; every later breakpoint long enough to
    cache is written with its own TTL; what lies after the last breakpoint is plain input.
    """
    model = body["model"]
    segments = _segments(body)
    minimum = state.config.min_cache_tokens(model)
    now = state.now()
    digest = hashlib.sha256(model.encode())
    prefixes: list[tuple[int, str, str | None]] = []  # (tokens up to here, prefix digest, ttl) at breakpoints
    running = 0
    for segment in segments:
        running += segment.tokens
        digest.update(len(segment.digest_source).to_bytes(8, "big") + segment.digest_source.encode())
        if segment.cache_ttl:
            prefixes.append((running, digest.hexdigest(), segment.cache_ttl))
    total = running

    read = 0
    hit = -1
    for index in range(len(prefixes) - 1, -1, -1):
        tokens, prefix_digest, ttl = prefixes[index]
        key = (scope, model, prefix_digest)
        if tokens >= minimum and state.cache.get(key, 0.0) > now:
            read, hit = tokens, index
            state.cache[key] = now + CACHE_TTLS[ttl or "5m"]  # a hit refreshes the TTL
            break
    written = {"5m": 0, "1h": 0}
    covered = read
    for tokens, prefix_digest, ttl in prefixes[hit + 1 :]:
        if tokens < minimum:
            continue
        written[ttl or "5m"] += tokens - covered
        covered = tokens
        state.cache[(scope, model, prefix_digest)] = now + CACHE_TTLS[ttl or "5m"]
    creation = written["5m"] + written["1h"]
    return {
        "input_tokens": total - read - creation,
        "cache_creation_input_tokens": creation,
        "cache_read_input_tokens": read,
        "cache_creation": {"ephemeral_5m_input_tokens": written["5m"], "ephemeral_1h_input_tokens": written["1h"]},
    }


def _last_user_text(body: dict[str, Any]) -> str:
    for message in reversed(body["messages"]):
        if message["role"] != "user":
            continue
        content = message["content"]
        if isinstance(content, str):
            return str(content)
        return "".join(str(block.get("text", "")) for block in content if block.get("type") == "text")
    return ""


def _output(body: dict[str, Any]) -> tuple[str, str, str | None]:
    """The reply (an echo of the last user message), its stop reason and stop sequence."""
    text = _last_user_text(body)
    stop_reason, stop_sequence = "end_turn", None
    earliest: tuple[int, str] | None = None
    for stop in body.get("stop_sequences", []):
        at = text.find(stop)
        if at != -1 and (earliest is None or at < earliest[0]):
            earliest = (at, stop)
    if earliest is not None:
        text, stop_reason, stop_sequence = text[: earliest[0]], "stop_sequence", earliest[1]
    max_chars = body["max_tokens"] * 4
    if len(text) > max_chars:
        text, stop_reason, stop_sequence = text[:max_chars], "max_tokens", None
    return text, stop_reason, stop_sequence


def create_message(
    state: SandboxState, body: dict[str, Any], scope: str, *, service_tier: str = "standard"
) -> dict[str, Any]:
    """The full Message object answering a validated body: the echo as text and, when `tool_choice` names
    a tool, a call of that tool with the echo as its input (`{"text": …}`)."""
    text, stop_reason, stop_sequence = _output(body)
    usage = _usage(state, body, scope)
    usage["output_tokens"] = count_tokens(text)
    usage["service_tier"] = service_tier
    content: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") == "tool" and isinstance(choice.get("name"), str):
        content.append({"type": "tool_use", "id": new_id("toolu_"), "name": choice["name"], "input": {"text": text}})
        stop_reason, stop_sequence = "tool_use", None
        usage["output_tokens"] = min(body["max_tokens"], usage["output_tokens"] + count_tokens(text) + 8)
    return {
        "id": new_id("msg_"),
        "type": "message",
        "role": "assistant",
        "model": MODELS[body["model"]].model_id,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence,
        "usage": usage,
    }


def stream_events(message: dict[str, Any], chunk_chars: int) -> list[tuple[str, dict[str, Any]]]:
    """The SSE events that deliver `message`, in the order the API sends them."""
    usage = message["usage"]
    start_usage = {key: value for key, value in usage.items() if key != "output_tokens"}
    start_usage["output_tokens"] = 1
    events: list[tuple[str, dict[str, Any]]] = [
        (
            "message_start",
            {
                "type": "message_start",
                "message": {**message, "content": [], "stop_reason": None, "stop_sequence": None, "usage": start_usage},
            },
        )
    ]
    blocks = message["content"] or [{"type": "text", "text": ""}]
    for index, block in enumerate(blocks):
        if block["type"] == "tool_use":
            start, delta_type, field, whole = (
                {**block, "input": {}},
                "input_json_delta",
                "partial_json",
                json.dumps(block["input"], ensure_ascii=False),
            )
        else:
            start, delta_type, field, whole = {"type": "text", "text": ""}, "text_delta", "text", block["text"]
        events.append(("content_block_start", {"type": "content_block_start", "index": index, "content_block": start}))
        if index == 0:
            events.append(("ping", {"type": "ping"}))
        for at in range(0, len(whole), max(chunk_chars, 1)):
            delta = {"type": delta_type, field: whole[at : at + chunk_chars]}
            events.append(("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}))
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    final_usage = {
        "input_tokens": usage["input_tokens"],
        "cache_creation_input_tokens": usage["cache_creation_input_tokens"],
        "cache_read_input_tokens": usage["cache_read_input_tokens"],
        "output_tokens": usage["output_tokens"],
    }
    events.append(
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": message["stop_reason"], "stop_sequence": message["stop_sequence"]},
                "usage": final_usage,
            },
        )
    )
    events.append(("message_stop", {"type": "message_stop"}))
    return events
