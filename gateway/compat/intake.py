"""A Messages API body, accepted for the Anthropic-compatible endpoint (docs/anthropic.md): checked, its
mode decided, redacted, and turned into exactly the body that will be sent — before anything is reserved
or sent.

Prompt-bound (`"model": "prompt:<slug>"`): the version released to the client's environment supplies the
system prompt, model (routed by its size rules), max_tokens ceiling, stop sequences, cache settings,
redaction rules and output checks; the caller's `messages` are the conversation. Free-form (another model
name, only for clients allowed it): the caller's own `system`, `messages`, `tools` and `stop_sequences`,
limited to the client's models and max_tokens ceiling. Either way every text block is redacted (one
placeholder per distinct value for the whole request), images and documents are refused unless the client
allows them, and fields Tollgate does not pass on are refused by name.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from core.errors import (
    DomainError,
    FreeformNotAllowed,
    MediaNotAllowed,
    ModelNotAllowed,
    RoleRequired,
    SystemPromptRefused,
    UnsupportedField,
)
from gateway.discovery import Discovery, discovery_of
from gateway.pipeline import end_user_pseudonym, estimate_tokens, message_params, rule_for
from gateway.redaction.engine import Redaction, custom_patterns
from keys.models import ApiClient
from prompts.models import PromptVersion
from prompts.rendering import unsendable
from prompts.services import released_version_for_run
from prompts.specs import output_checks_of, redaction_of, routing_of

PROMPT_PREFIX = "prompt:"
# Fields a call may carry, per mode; `stream` is the endpoint's, not the body sent upstream. The sampling
# parameters (temperature, top_p, top_k) are refused: the API version Tollgate calls refuses them.
PROMPT_BOUND_FIELDS = frozenset({"model", "max_tokens", "messages", "stream", "metadata"})
FREEFORM_FIELDS = PROMPT_BOUND_FIELDS | {"system", "stop_sequences", "tools", "tool_choice"}
COUNT_PROMPT_BOUND_FIELDS = frozenset({"model", "messages"})
COUNT_FREEFORM_FIELDS = COUNT_PROMPT_BOUND_FIELDS | {"system", "tools", "tool_choice"}
MEDIA = frozenset({"image", "document"})
TEXT_BLOCK_KEYS = frozenset({"type", "text", "cache_control"})
BLOCK_KEYS = {
    "text": TEXT_BLOCK_KEYS,
    "image": frozenset({"type", "source", "cache_control"}),
    "document": frozenset({"type", "source", "title", "context", "citations", "cache_control"}),
    "tool_use": frozenset({"type", "id", "name", "input", "cache_control"}),
    "tool_result": frozenset({"type", "tool_use_id", "content", "is_error", "cache_control"}),
}
ROLE_BLOCKS = {
    "user": frozenset({"text", "image", "document", "tool_result"}),
    "assistant": frozenset({"text", "tool_use"}),
}
TOOL_ID = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")
# A tool definition is the caller's own tool: a server tool (web search, code execution, …) or an
# Anthropic-defined one (bash, computer use, …) runs or expands at Anthropic beyond what the body holds,
# so neither its cost nor the text it brings into the call is bounded by the reservation.
TOOL_KEYS = frozenset({"type", "name", "description", "input_schema", "cache_control"})
# Each source of a media block, with the keys it holds: nothing else rides along in it unredacted.
SOURCES = {
    "image": {"base64": frozenset({"type", "media_type", "data"}), "url": frozenset({"type", "url"}),
              "file": frozenset({"type", "file_id"})},
    "document": {"base64": frozenset({"type", "media_type", "data"}), "text": frozenset({"type", "media_type", "data"}),
                 "content": frozenset({"type", "content"}), "url": frozenset({"type", "url"}),
                 "file": frozenset({"type", "file_id"})},
}  # fmt: skip
MEDIA_TYPES = {
    ("image", "base64"): frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"}),
    ("document", "base64"): frozenset({"application/pdf"}),
    ("document", "text"): frozenset({"text/plain"}),
}
TTL_ORDER = ("off", "5m", "1h")  # cache writes, cheapest first


@dataclass
class MessagesCall:
    """A Messages API call accepted for a client: what is sent (`params`, redacted) and how it is governed."""

    version: PromptVersion | None  # None: free-form
    params: dict[str, Any]
    redaction: Redaction
    cache_ttl: str  # the dearest cache write the call may make: "off", "5m" or "1h"
    rule: str | None
    stream: bool
    metadata: dict[str, str]
    discovery: Discovery | None


def _invalid(field: str, problem: str) -> DomainError:
    return DomainError(f"{field}: {problem}", extra={"errors": {field: problem}})


def _text(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise _invalid(field, "must be a string")
    problem = unsendable(value)
    if problem:
        raise _invalid(field, problem)
    return value


class _Redactor:
    """Redacts every text of one request with one mapping (and the version's own rules when prompt-bound)."""

    def __init__(self, version: PromptVersion | None) -> None:
        self.redaction = Redaction()
        self.extra = custom_patterns(redaction_of(version)) if version is not None else []

    def text(self, value: Any, field: str) -> str:
        return self.redaction.redact_text(_text(value, field), self.extra)

    def values(self, value: Any, field: str) -> Any:
        """Every string in a JSON value redacted (a tool call's input); keys and numbers are sent as they
        are, so one that looks like personal data is refused."""
        if isinstance(value, str):
            return self.text(value, field)
        if isinstance(value, list):
            return [self.values(item, f"{field}[{index}]") for index, item in enumerate(value)]
        if isinstance(value, dict):
            return {self.unchanged(key, f"{field} (a key)"): self.values(item, f"{field}.{key}")
                    for key, item in value.items()}  # fmt: skip
        return self.unchanged(value, field)

    def unchanged(self, value: Any, field: str) -> Any:
        """A value sent as it is (tool definitions, stop sequences): refused if it carries personal data."""
        if self._personal(value, field):
            raise _invalid(field, "carries what looks like personal data; it would be sent unredacted")
        return value

    def _personal(self, value: Any, field: str) -> bool:
        if isinstance(value, str):
            return Redaction().redact_text(_text(value, field), self.extra) != value
        if isinstance(value, list):
            return any(self._personal(item, field) for item in value)
        if isinstance(value, dict):
            return any(self._personal(key, field) or self._personal(item, field) for key, item in value.items())
        if isinstance(value, int | float) and not isinstance(value, bool):  # a card or phone number written as one
            return self._personal(json.dumps(value), field)
        return False


def _cache_control(value: Any, field: str) -> dict[str, str]:
    """Only Anthropic's own shape passes: nothing else may ride along in it unredacted."""
    if not isinstance(value, dict) or value.get("type") != "ephemeral" or set(value) - {"type", "ttl"}:
        raise _invalid(field, '{"type": "ephemeral"} with an optional "ttl" of "5m" or "1h"')
    if value.get("ttl", "5m") not in ("5m", "1h"):
        raise _invalid(field, 'the ttl is "5m" or "1h"')
    return dict(value)


def _media(block: dict[str, Any], field: str, client: ApiClient, redactor: _Redactor) -> dict[str, Any]:
    """An image or document the client may send: sent as it is (its pixels and pages cannot be redacted),
    but the texts around it — a document's title and context, a plain-text or content document — are
    redacted, and its source holds only what its kind holds."""
    block = dict(block)
    citations = block.get("citations")
    if citations is not None and (not isinstance(citations, dict) or set(citations) != {"enabled"}
                                  or not isinstance(citations["enabled"], bool)):  # fmt: skip
        raise _invalid(f"{field}.citations", '{"enabled": true or false}')
    for name in ("title", "context"):
        if name in block:
            block[name] = redactor.text(block[name], f"{field}.{name}")
    block["source"] = _source(block.get("source"), block["type"], f"{field}.source", client, redactor)
    return block


def _source(source: Any, kind: str, field: str, client: ApiClient, redactor: _Redactor) -> dict[str, Any]:
    shapes = SOURCES[kind]
    way = source.get("type") if isinstance(source, dict) else None
    if not isinstance(way, str) or way not in shapes or set(source) != shapes[way]:
        raise _invalid(field, f"a {kind} source: {', '.join(shapes)}, with its own keys only")
    if (kind, way) in MEDIA_TYPES and not (isinstance(source["media_type"], str)
                                           and source["media_type"] in MEDIA_TYPES[kind, way]):  # fmt: skip
        raise _invalid(f"{field}.media_type", " or ".join(sorted(MEDIA_TYPES[kind, way])))
    if way == "text":
        return {**source, "data": redactor.text(source["data"], f"{field}.data")}
    if way == "content":
        content = source["content"]
        if isinstance(content, str):
            return {**source, "content": redactor.text(content, f"{field}.content")}
        if not isinstance(content, list) or not content:
            raise _invalid(f"{field}.content", "a string or a non-empty list of text and image blocks")
        return {**source, "content": [_result_block(item, f"{field}.content[{index}]", client, redactor)
                                      for index, item in enumerate(content)]}  # fmt: skip
    if way == "file" and not (isinstance(source["file_id"], str) and TOOL_ID.match(source["file_id"])):
        raise _invalid(f"{field}.file_id", "1 to 128 letters, digits, '-' or '_'")
    if way == "url":
        redactor.unchanged(_text(source["url"], f"{field}.url"), f"{field}.url")
    elif way == "base64":
        _text(source["data"], f"{field}.data")
    return dict(source)


def _block(block: Any, field: str, role: str, client: ApiClient, redactor: _Redactor) -> dict[str, Any]:
    if not isinstance(block, dict) or not isinstance(block.get("type"), str):
        raise _invalid(field, "each content block is an object with a `type`")
    kind = block["type"]
    if kind not in ROLE_BLOCKS[role]:
        raise _invalid(field, f"a {role} message cannot hold a '{kind[:40]}' block here")
    if unknown := sorted(set(block) - BLOCK_KEYS[kind]):
        raise _invalid(field, f"unsupported keys: {', '.join(key[:40] for key in unknown)}")
    if "cache_control" in block:
        block = {**block, "cache_control": _cache_control(block["cache_control"], f"{field}.cache_control")}
    if kind in MEDIA:
        if not client.freeform_media:
            raise MediaNotAllowed(
                f"{field}: this client may not send {kind} blocks (personal data in them cannot be redacted)."
            )
        return _media(block, field, client, redactor)
    if kind == "text":
        return {**block, "text": redactor.text(block.get("text"), f"{field}.text")}
    if kind == "tool_use":
        if not isinstance(block.get("id"), str) or not TOOL_ID.match(block["id"]):
            raise _invalid(f"{field}.id", "1 to 128 letters, digits, '-' or '_'")
        if not isinstance(block.get("input"), dict):
            raise _invalid(f"{field}.input", "must be an object")
        return {**block, "name": redactor.unchanged(_text(block.get("name"), f"{field}.name"), f"{field}.name"),
                "input": redactor.values(block["input"], f"{field}.input")}  # fmt: skip
    # tool_result
    if not isinstance(block.get("tool_use_id"), str) or not TOOL_ID.match(block["tool_use_id"]):
        raise _invalid(f"{field}.tool_use_id", "1 to 128 letters, digits, '-' or '_'")
    if not isinstance(block.get("is_error", False), bool):
        raise _invalid(f"{field}.is_error", "true or false")
    content = block.get("content", "")
    if isinstance(content, str):
        content = redactor.text(content, f"{field}.content")
    elif isinstance(content, list):
        content = [
            _result_block(item, f"{field}.content[{index}]", client, redactor) for index, item in enumerate(content)
        ]
    else:
        raise _invalid(f"{field}.content", "a string or a list of text and image blocks")
    return {**block, "content": content}


def _result_block(block: Any, field: str, client: ApiClient, redactor: _Redactor) -> dict[str, Any]:
    if not isinstance(block, dict) or block.get("type") not in ("text", "image"):
        raise _invalid(field, "a tool result holds text and image blocks")
    return _block(block, field, "user", client, redactor)


def _messages(raw: Any, client: ApiClient, redactor: _Redactor) -> list[dict[str, Any]]:
    if not isinstance(raw, list) or not raw:
        raise _invalid("messages", "a non-empty list of messages")
    messages: list[dict[str, Any]] = []
    for index, message in enumerate(raw):
        field = f"messages[{index}]"
        if not isinstance(message, dict) or set(message) != {"role", "content"}:
            raise _invalid(field, "each message is an object with `role` and `content`")
        role = message["role"]
        if not isinstance(role, str) or role not in ROLE_BLOCKS:
            raise _invalid(f"{field}.role", "'user' or 'assistant'")
        content = message["content"]
        if isinstance(content, str):
            messages.append({"role": role, "content": redactor.text(content, f"{field}.content")})
        elif isinstance(content, list) and content:
            blocks = [_block(block, f"{field}.content[{i}]", role, client, redactor) for i, block in enumerate(content)]
            messages.append({"role": role, "content": blocks})
        else:
            raise _invalid(f"{field}.content", "a string or a non-empty list of content blocks")
    if messages[0]["role"] != "user":
        raise _invalid("messages[0].role", "the first message is the user's")
    return messages


def _system(raw: Any, redactor: _Redactor) -> tuple[Any, str]:
    """The caller's system prompt redacted, and its text as the inventory keeps it."""
    if isinstance(raw, str):
        system = redactor.text(raw, "system")
        return system, system
    if not isinstance(raw, list):
        raise _invalid("system", "a string or a list of text blocks")
    blocks = []
    for index, block in enumerate(raw):
        field = f"system[{index}]"
        if not isinstance(block, dict) or block.get("type") != "text" or set(block) - TEXT_BLOCK_KEYS:
            raise _invalid(field, "a text block")
        if "cache_control" in block:
            block = {**block, "cache_control": _cache_control(block["cache_control"], f"{field}.cache_control")}
        blocks.append({**block, "text": redactor.text(block.get("text"), f"{field}.text")})
    return blocks, "\n\n".join(block["text"] for block in blocks)


def _max_tokens(raw: Any, ceiling: int, *, clamp: bool) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 1:
        raise _invalid("max_tokens", "a positive integer")
    if raw > ceiling and not clamp:
        raise _invalid("max_tokens", f"at most {ceiling} for this client")
    return min(int(raw), ceiling)


def cache_ttl_of(value: Any) -> str:
    """The longest cache write any `cache_control` in a body may make: "1h", "5m" or "off"."""
    found = "off"
    if isinstance(value, list):
        for item in value:
            found = max(found, cache_ttl_of(item), key=TTL_ORDER.index)
    elif isinstance(value, dict):
        control = value.get("cache_control")
        if isinstance(control, dict):
            found = "1h" if control.get("ttl") == "1h" else "5m"
        for item in value.values():
            if isinstance(item, list | dict):
                found = max(found, cache_ttl_of(item), key=TTL_ORDER.index)
    return found


def _prompt_version(client: ApiClient, model: str) -> PromptVersion:
    slug = model[len(PROMPT_PREFIX) :]
    version = released_version_for_run(slug=slug, environment=client.environment)
    if not client.may_run(slug):
        raise RoleRequired(f"This API client may not run '{slug}'.")
    output_checks_of(version)  # read once the answer came: a setting its spec refuses stops the call before it is paid
    return version


def _metadata(raw: Any) -> dict[str, str]:
    """`metadata.user_id` as the run endpoint's `end_user`: pseudonymised; nothing else may ride along."""
    if not isinstance(raw, dict) or set(raw) - {"user_id"}:
        raise _invalid("metadata", "an object with at most `user_id`")
    if not raw.get("user_id"):
        return {}
    return {"end_user": end_user_pseudonym(_text(raw["user_id"], "metadata.user_id"))}


def _governed_by(client: ApiClient, body: dict[str, Any], *, counting: bool) -> PromptVersion | None:
    """The released version a prompt-bound call runs (None: a free-form call), once the client may make the
    call and the body names only fields of its mode."""
    model = _text(body.get("model"), "model")
    prompt_bound = model.startswith(PROMPT_PREFIX)
    if prompt_bound:
        version = _prompt_version(client, model)
        if "system" in body:
            raise SystemPromptRefused(
                "A prompt-bound call uses the approved system prompt of the released version; remove `system`."
            )
        allowed = COUNT_PROMPT_BOUND_FIELDS if counting else PROMPT_BOUND_FIELDS
    else:
        version = None
        if not client.freeform:
            raise FreeformNotAllowed(
                f'This API client may only run released prompts: name one as "model": "{PROMPT_PREFIX}<slug>".'
            )
        if model not in client.freeform_models:
            raise ModelNotAllowed(f"This API client may not call the model '{model[:80]}'.")
        allowed = COUNT_FREEFORM_FIELDS if counting else FREEFORM_FIELDS
    if unknown := sorted(set(body) - allowed):
        mode = "a prompt-bound call" if prompt_bound else "this endpoint"
        raise UnsupportedField(
            f"Not accepted on {mode}: {', '.join(name[:40] for name in unknown)} (see docs/anthropic.md).",
            extra={"errors": {name[:40]: "not accepted" for name in unknown}},
        )
    return version


def messages_intake(client: ApiClient, body: Any, *, counting: bool = False) -> MessagesCall:
    """Accept a Messages API body (or a token-counting one) for `client`, or raise the problem with it."""
    if not isinstance(body, dict):
        raise DomainError("The body must be a JSON object.")
    version = _governed_by(client, body, counting=counting)
    redactor = _Redactor(version)
    system: Any = None
    system_text = ""
    if version is None and "system" in body:
        # Before the messages: its placeholders are then numbered by the system prompt alone, so one
        # template is one inventory entry whatever personal data the messages carry.
        system, system_text = _system(body["system"], redactor)
    personal_in_system = sum(redactor.redaction.counts.values()) > 0
    messages = _messages(body.get("messages"), client, redactor)
    params: dict[str, Any]
    discovery = None
    if version is not None:
        max_tokens = (
            version.max_tokens if counting else _max_tokens(body.get("max_tokens"), version.max_tokens, clamp=True)
        )
        params = message_params(version, model=version.model, system=version.system_prompt, messages=messages)
        params["max_tokens"] = max_tokens
    else:
        max_tokens = client.freeform_max_tokens if counting else _max_tokens(
            body.get("max_tokens"), client.freeform_max_tokens, clamp=False
        )  # fmt: skip
        params = {"model": body["model"], "max_tokens": max_tokens, "messages": messages}
        if "system" in body:
            params["system"] = system
        if not counting:
            discovery = discovery_of(system_text, personal_data=personal_in_system)
        for name in ("tools", "tool_choice", "stop_sequences"):
            if name in body:
                params[name] = _checked_list_or_object(name, body[name], redactor)
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise _invalid("stream", "true or false")
    rule = None
    if version is not None:
        picked = rule_for(routing_of(version), estimate_tokens(params))
        if picked is not None:
            params["model"], rule = picked
    cache_ttl = max(cache_ttl_of(params), version.cache_ttl if version else "off", key=TTL_ORDER.index)
    return MessagesCall(
        version=version,
        params=params,
        redaction=redactor.redaction,
        cache_ttl=cache_ttl,
        rule=rule,
        stream=stream,
        metadata=_metadata(body.get("metadata", {})),
        discovery=discovery,
    )


def _checked_list_or_object(name: str, value: Any, redactor: _Redactor) -> Any:
    if name == "tool_choice" and not isinstance(value, dict):
        raise _invalid(name, "an object")
    if name in ("tools", "stop_sequences") and not isinstance(value, list):
        raise _invalid(name, "a list")
    if name == "stop_sequences" and not all(isinstance(item, str) and item for item in value):
        raise _invalid(name, "a list of non-empty strings")
    if name == "tools":
        value = [_tool(tool, f"tools[{index}]") for index, tool in enumerate(value)]
    return redactor.unchanged(value, name)


def _tool(tool: Any, field: str) -> dict[str, Any]:
    """A tool definition of the caller's own (see TOOL_KEYS)."""
    if not isinstance(tool, dict) or tool.get("type", "custom") != "custom":
        raise _invalid(field, "a tool of your own (`name`, `description`, `input_schema`): server tools and "
                       "Anthropic-defined tools are not accepted")  # fmt: skip
    if unknown := sorted(set(tool) - TOOL_KEYS):
        raise _invalid(field, f"unsupported keys: {', '.join(key[:40] for key in unknown)}")
    if "cache_control" in tool:
        return {**tool, "cache_control": _cache_control(tool["cache_control"], f"{field}.cache_control")}
    return dict(tool)
