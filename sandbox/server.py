"""The sandbox upstream: an asyncio HTTP server that answers like api.anthropic.com (docs/contract.md §9).

It serves the official `anthropic` SDK unchanged, holds hundreds of concurrent connections on one core,
and never touches Django's ORM. Control endpoints under /_sandbox/ inject faults and latency, age the
clock, and list what arrived.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from sandbox.batches import (
    batch_cancel,
    batch_create,
    batch_delete,
    batch_expire,
    batch_get,
    batch_object,
    batch_page,
    batch_results,
    rfc3339,
)
from sandbox.catalog import API_VERSIONS, KNOWN_BETAS
from sandbox.messages import (
    ApiError,
    count_input_tokens,
    create_message,
    invalid,
    stream_events,
    validate_count,
    validate_create,
)
from sandbox.state import FAULT_KINDS, Config, Fault, SandboxState, new_id

logger = logging.getLogger(__name__)


@dataclass
class ApiCall:
    """What the middleware learnt about a /v1/ request, for its handler."""

    request_id: str
    scope: str = ""
    api_version: str = ""
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    fault: Fault | None = None


STATE: web.AppKey[SandboxState] = web.AppKey("state", SandboxState)
CALL: web.RequestKey[ApiCall] = web.RequestKey("call", ApiCall)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

MAX_BODY_BYTES = 256 * 1024 * 1024
MAX_MESSAGE_BODY_BYTES = 32 * 1024 * 1024

_FAULT_ERRORS: dict[Any, tuple[int, str, str]] = {
    429: (429, "rate_limit_error", "Number of requests has exceeded your per-minute rate limit."),
    500: (500, "api_error", "Internal server error"),
    529: (529, "overloaded_error", "Overloaded"),
    "stream_error": (529, "overloaded_error", "Overloaded"),
    "timeout": (504, "timeout_error", "Request timed out"),
}


def _error_body(error_type: str, message: str, request_id: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": error_type, "message": message}, "request_id": request_id}


def _api_key_scope(request: web.Request) -> str:
    """The caller's key, hashed: caches and batches are per organisation, here per key. Never stored raw."""
    key = request.headers.get("x-api-key", "")
    authorization = request.headers.get("Authorization", "")
    if not key and authorization.lower().startswith("bearer "):
        key = authorization[7:].strip()
    if not key:
        raise ApiError(401, "authentication_error", "x-api-key header is required")
    if "invalid" in key or "revoked" in key:
        raise ApiError(401, "authentication_error", "invalid x-api-key")
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def _api_version(request: web.Request) -> str:
    version = request.headers.get("anthropic-version")
    if not version:
        raise invalid("anthropic-version: header is required")
    if version not in API_VERSIONS:
        raise invalid(f"anthropic-version: unknown version '{version}'")
    for beta in filter(None, (part.strip() for part in request.headers.get("anthropic-beta", "").split(","))):
        if beta not in KNOWN_BETAS:
            raise invalid(f"Unexpected value(s) `{beta}` for the `anthropic-beta` header.")
    return version


async def _json_body(request: web.Request, limit: int) -> Any:
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, "request_too_large", f"Request exceeds the maximum allowed number of bytes ({limit}).")
    raw = await request.read()
    if len(raw) > limit:
        raise ApiError(413, "request_too_large", f"Request exceeds the maximum allowed number of bytes ({limit}).")
    try:
        return json.loads(raw or b"null")
    except ValueError:
        raise invalid("The request body is not valid JSON.") from None


def _fault_response(fault: Fault, request_id: str) -> web.Response:
    status, error_type, message = _FAULT_ERRORS[fault.kind]
    headers = {"request-id": request_id}
    if fault.kind == 429:
        retry_after_ms = fault.retry_after_ms if fault.retry_after_ms is not None else 50
        headers["retry-after"] = str(max(1, math.ceil(retry_after_ms / 1000)))
        headers["retry-after-ms"] = str(retry_after_ms)
    elif fault.retry_after_ms is not None:
        headers["retry-after-ms"] = str(fault.retry_after_ms)
    return web.json_response(_error_body(error_type, message, request_id), status=status, headers=headers)


@web.middleware
async def api_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Everything under /v1/: auth, version, recording, latency, faults, and the API's headers."""
    if not request.path.startswith("/v1/"):
        return await handler(request)
    state = request.app[STATE]
    request_id = new_id("req_")
    call = request[CALL] = ApiCall(request_id=request_id)
    try:
        call.scope = _api_key_scope(request)
        call.api_version = _api_version(request)
        limit = MAX_BODY_BYTES if request.path.startswith("/v1/messages/batches") else MAX_MESSAGE_BODY_BYTES
        body = call.body = await _json_body(request, limit) if request.method == "POST" else None
        state.requests.append(
            {
                "method": request.method,
                "path": request.path,
                "query": dict(request.query),
                "anthropic_version": call.api_version,
                "anthropic_beta": request.headers.get("anthropic-beta"),
                "retry_count": int(request.headers.get("x-stainless-retry-count", "0") or 0),
                "body": body,
                "received_at": rfc3339(state.now()),
            }
        )
        tokens = 0
        if isinstance(body, dict) and isinstance(body.get("messages"), list):
            try:
                tokens = count_input_tokens(body)
            except ApiError:
                tokens = 0
        requests_left, tokens_left, window_end = state.count_request(call.scope, tokens)
        reset = rfc3339(window_end) or ""
        call.headers = {
            "request-id": request_id,
            "anthropic-ratelimit-requests-limit": str(state.config.requests_per_minute),
            "anthropic-ratelimit-requests-remaining": str(requests_left),
            "anthropic-ratelimit-requests-reset": reset,
            "anthropic-ratelimit-tokens-limit": str(state.config.tokens_per_minute),
            "anthropic-ratelimit-tokens-remaining": str(tokens_left),
            "anthropic-ratelimit-tokens-reset": reset,
        }
        if state.config.latency_ms:
            await asyncio.sleep(state.config.latency_ms / 1000)
        wait = state.rate_limit_wait(call.scope) if request.path.startswith("/v1/messages") else None
        if wait is not None:
            return _fault_response(Fault(kind=429, remaining=0, retry_after_ms=math.ceil(wait * 1000)), request_id)
        fault = state.take_fault()
        if fault is not None:
            streaming = isinstance(body, dict) and body.get("stream") is True
            if fault.kind == "stream_error" and streaming and request.path == "/v1/messages":
                call.fault = fault
            elif fault.kind == "disconnect":
                if request.transport is not None:
                    request.transport.abort()
                raise ConnectionResetError("sandbox: injected disconnect")
            elif fault.kind == "timeout":
                await asyncio.sleep(fault.seconds)
                return _fault_response(fault, request_id)
            else:
                return _fault_response(fault, request_id)
        response = await handler(request)
    except ApiError as exc:
        response = web.json_response(
            _error_body(exc.error_type, exc.message, request_id), status=exc.status, headers={"request-id": request_id}
        )
    if not response.prepared:
        response.headers.update(call.headers)
    return response


async def messages_create(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    body = validate_create(request[CALL].body, request[CALL].api_version)
    message = create_message(state, body, request[CALL].scope)
    if not body.get("stream"):
        return web.json_response(message)
    response = web.StreamResponse(headers={**request[CALL].headers, "Content-Type": "text/event-stream"})
    response.headers["Cache-Control"] = "no-cache"
    await response.prepare(request)
    events = stream_events(message, state.config.stream_chunk_chars)
    fault = request[CALL].fault
    for index, (name, data) in enumerate(events):
        if fault is not None and index >= 4:  # after message_start, the block start, a ping and one delta
            error = _error_body("overloaded_error", "Overloaded", request[CALL].request_id)
            await response.write(f"event: error\ndata: {json.dumps(error)}\n\n".encode())
            break
        await response.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())
    await response.write_eof()
    return response


async def messages_count_tokens(request: web.Request) -> web.StreamResponse:
    body = validate_count(request[CALL].body, request[CALL].api_version)
    return web.json_response({"input_tokens": count_input_tokens(body)})


def _origin(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


async def batches_create(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    batch = batch_create(state, request[CALL].body, request[CALL].scope)
    return web.json_response(batch_object(state, batch, _origin(request), request[CALL].api_version))


async def batches_retrieve(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    batch = batch_get(state, request.match_info["batch_id"], request[CALL].scope)
    return web.json_response(batch_object(state, batch, _origin(request), request[CALL].api_version))


async def batches_list(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    try:
        limit = int(request.query.get("limit", "20"))
    except ValueError:
        raise invalid("limit: Input should be a valid integer") from None
    if not 1 <= limit <= 1000:
        raise invalid("limit: Input should be between 1 and 1000")
    listing = batch_page(
        state,
        request[CALL].scope,
        limit=limit,
        after_id=request.query.get("after_id"),
        before_id=request.query.get("before_id"),
    )
    origin, version = _origin(request), request[CALL].api_version
    data = [batch_object(state, batch, origin, version) for batch in listing.pop("page")]
    return web.json_response({"data": data, **listing})


async def batches_cancel(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    batch = batch_get(state, request.match_info["batch_id"], request[CALL].scope)
    batch_cancel(state, batch)
    return web.json_response(batch_object(state, batch, _origin(request), request[CALL].api_version))


async def batches_delete(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    batch = batch_get(state, request.match_info["batch_id"], request[CALL].scope)
    batch_delete(state, batch)
    return web.json_response({"id": batch.batch_id, "type": "message_batch_deleted"})


async def batches_results(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    batch = batch_get(state, request.match_info["batch_id"], request[CALL].scope)
    if batch_object(state, batch, _origin(request), request[CALL].api_version)["processing_status"] != "ended":
        raise invalid(f"Results for batch {batch.batch_id} are not available until it has ended.")
    lines = "\n".join(json.dumps(result) for result in batch_results(state, batch, request[CALL].api_version))
    return web.Response(body=(lines + "\n").encode(), content_type="application/x-jsonl")


# --- control endpoints ------------------------------------------------------------------------------------


async def _control_json(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(text="body must be JSON") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="body must be a JSON object")
    return body


async def control_faults(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    if request.method == "POST":
        body = await _control_json(request)
        kind: int | str = body.get("status", "")
        count = body.get("count", 1)
        if kind not in FAULT_KINDS or not isinstance(count, int) or count < 1:
            raise web.HTTPBadRequest(text=f"status must be one of {sorted(map(str, FAULT_KINDS))}; count >= 1")
        state.faults.append(
            Fault(
                kind=kind,
                remaining=count,
                retry_after_ms=body.get("retry_after_ms"),
                seconds=float(body.get("seconds", 30.0)),
            )
        )
    return web.json_response({"faults": [fault.__dict__ for fault in state.faults]})


async def control_latency(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    body = await _control_json(request)
    ms = body.get("ms")
    if not isinstance(ms, int) or ms < 0:
        raise web.HTTPBadRequest(text="ms must be a non-negative integer")
    state.config.latency_ms = ms
    return web.json_response({"latency_ms": ms})


async def control_ratelimit(request: web.Request) -> web.StreamResponse:
    """`{"rpm": N}` turns on rate-limit mode (0 turns it off); GET shows it and how many were refused."""
    state = request.app[STATE]
    if request.method == "POST":
        rpm = (await _control_json(request)).get("rpm")
        if not isinstance(rpm, int) or rpm < 0:
            raise web.HTTPBadRequest(text="rpm must be a non-negative integer")
        state.config.enforced_rpm = rpm
        state.admitted.clear()
        state.rate_limited = 0
    return web.json_response({"rpm": state.config.enforced_rpm, "rate_limited": state.rate_limited})


async def control_config(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    if request.method == "POST":
        body = await _control_json(request)
        unknown = set(body) - set(Config.__dataclass_fields__)
        if unknown:
            raise web.HTTPBadRequest(text=f"unknown settings: {sorted(unknown)}")
        for name, value in body.items():
            if name == "cache_min_tokens":
                state.config.cache_min_tokens.update({str(k): int(v) for k, v in value.items()})
            else:
                setattr(state.config, name, type(getattr(state.config, name))(value))
    return web.json_response(state.config.__dict__)


async def control_clock(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    body = await _control_json(request)
    state.clock_offset += float(body.get("advance_seconds", 0))
    return web.json_response({"now": rfc3339(state.now())})


async def control_requests(request: web.Request) -> web.StreamResponse:
    return web.json_response({"requests": list(request.app[STATE].requests)})


async def control_reset(request: web.Request) -> web.StreamResponse:
    request.app[STATE].reset()
    return web.json_response({"reset": True})


async def control_batch_expire(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    batch = state.batches.get(request.match_info["batch_id"])
    if batch is None:
        raise web.HTTPNotFound(text="no such batch")
    batch_expire(state, batch)
    return web.json_response({"expired": batch.batch_id})


def build_app(config: Config | None = None) -> web.Application:
    app = web.Application(middlewares=[api_middleware], client_max_size=MAX_BODY_BYTES)
    app[STATE] = SandboxState(config)
    app.router.add_post("/v1/messages", messages_create)
    app.router.add_post("/v1/messages/count_tokens", messages_count_tokens)
    app.router.add_post("/v1/messages/batches", batches_create)
    app.router.add_get("/v1/messages/batches", batches_list)
    app.router.add_get("/v1/messages/batches/{batch_id}", batches_retrieve)
    app.router.add_delete("/v1/messages/batches/{batch_id}", batches_delete)
    app.router.add_post("/v1/messages/batches/{batch_id}/cancel", batches_cancel)
    app.router.add_get("/v1/messages/batches/{batch_id}/results", batches_results)
    app.router.add_route("*", "/_sandbox/faults", control_faults)
    app.router.add_post("/_sandbox/latency", control_latency)
    app.router.add_route("*", "/_sandbox/ratelimit", control_ratelimit)
    app.router.add_route("*", "/_sandbox/config", control_config)
    app.router.add_post("/_sandbox/clock", control_clock)
    app.router.add_get("/_sandbox/requests", control_requests)
    app.router.add_post("/_sandbox/reset", control_reset)
    app.router.add_post("/_sandbox/batches/{batch_id}/expire", control_batch_expire)
    return app


class SandboxServer:
    """The sandbox on its own event loop in a background thread: for tests, benchmarks and `make run`."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, config: Config | None = None) -> None:
        self.host = host
        self.port = port
        self.app = build_app(config)
        self._loop = asyncio.new_event_loop()
        self._runner = web.AppRunner(self.app, handler_cancellation=True, shutdown_timeout=0.5, access_log=None)
        self._thread = threading.Thread(target=self._loop.run_forever, name="sandbox", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def state(self) -> SandboxState:
        return self.app[STATE]

    def start(self) -> SandboxServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        return self

    async def _start(self) -> None:
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, backlog=1024, reuse_address=True)
        await site.start()
        self.port = self._runner.addresses[0][1]

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    def call(self, function: Callable[[SandboxState], Any]) -> Any:
        """Run `function(state)` on the server's loop (state is not shared across threads otherwise)."""

        async def run() -> Any:
            return function(self.state)

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout=10)
