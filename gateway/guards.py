"""Idempotent replay, kept in the cache (Redis when configured). (Rate limits: keys.ratelimit.)

An idempotent result holds the caller's rehydrated answer, so it is stored sealed (AES-GCM, bound to
the client and key) and expires after 24 hours.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

from django.core.cache import cache

from core.errors import IdempotencyConflict
from gateway.streams import ClosingStream
from keys.crypto import Sealed, associated_data, seal, unseal
from keys.models import ApiClient

IDEMPOTENCY_TTL = 24 * 60 * 60
# A key stays claimed while its first request may still be running: as long as a call may hold its spend.
IN_FLIGHT_TTL = 45 * 60


def body_digest(body: Any) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _cache_key(client: ApiClient, key: str) -> str:
    return f"idempotency:{client.uid}:{hashlib.sha256(key.encode()).hexdigest()}"


def _aad(client: ApiClient, key: str) -> bytes:
    return associated_data(kind="idempotent_result", row=f"{client.uid}/{key}", environment=client.environment)


def idempotency_begin(client: ApiClient, key: str, digest: str) -> dict[str, Any] | None:
    """The stored result when this key was used before with the same body; None when the request
    should run now (the key is then claimed). Raises IdempotencyConflict for a different body, or
    while the first request with this key is still running."""
    cache_key = _cache_key(client, key)
    if cache.add(cache_key, {"digest": digest, "state": "running"}, timeout=IN_FLIGHT_TTL):
        return None
    entry = cache.get(cache_key) or {}
    if entry.get("digest") != digest:
        raise IdempotencyConflict("This Idempotency-Key was used with a different request body.")
    if entry.get("state") != "done":
        raise IdempotencyConflict("A request with this Idempotency-Key is still running; retry shortly.")
    return json.loads(unseal(Sealed(entry["ciphertext"], entry["kek_id"]), aad=_aad(client, key)))  # type: ignore[no-any-return]


def idempotency_store(client: ApiClient, key: str, digest: str, result: dict[str, Any]) -> None:
    sealed = seal(json.dumps(result), aad=_aad(client, key))
    cache.set(
        _cache_key(client, key),
        {"digest": digest, "state": "done", "ciphertext": sealed.ciphertext, "kek_id": sealed.key_id},
        timeout=IDEMPOTENCY_TTL,
    )


def idempotency_abort(client: ApiClient, key: str) -> None:
    """The request failed: let a retry with the same key run again."""
    cache.delete(_cache_key(client, key))


def idempotent_stream(
    events: Iterator[bytes], *, client: ApiClient, key: str, digest: str, completed: dict[str, Any]
) -> ClosingStream:
    """Pass a stream's events on; when the body is closed, keep its result under the key if the run
    completed (`completed` was filled), else free the key (an error, the caller went away, or the body was
    never read)."""

    def finish(started: bool) -> None:
        if completed:
            idempotency_store(client, key, digest, completed)
        else:
            idempotency_abort(client, key)

    return ClosingStream(events, on_close=finish)
