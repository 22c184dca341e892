"""Message Batches as the sandbox answers them: requests are answered when a batch ends."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from sandbox.messages import ApiError, create_message, invalid, validate_create
from sandbox.state import Batch, SandboxState, new_id

MAX_REQUESTS = 100_000
EXPIRY_SECONDS = 24 * 60 * 60
_CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def rfc3339(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z")


def batch_create(state: SandboxState, body: Any, scope: str) -> Batch:
    if not isinstance(body, dict) or set(body) - {"requests"}:
        raise invalid("The request body must be an object with only `requests`.")
    requests = body.get("requests")
    if not isinstance(requests, list) or not requests:
        raise invalid("requests: Field required and must be a non-empty list")
    if len(requests) > MAX_REQUESTS:
        raise invalid(f"requests: A batch may hold at most {MAX_REQUESTS} requests.")
    seen: set[str] = set()
    for index, request in enumerate(requests):
        if not isinstance(request, dict) or not isinstance(request.get("params"), dict):
            raise invalid(f"requests.{index}.params: Field required")
        custom_id = request.get("custom_id")
        if not isinstance(custom_id, str) or not _CUSTOM_ID.match(custom_id):
            raise invalid(f"requests.{index}.custom_id: 1 to 64 letters, digits, '-' or '_'")
        if custom_id in seen:
            raise invalid(f"requests.{index}.custom_id: '{custom_id}' is not unique in the batch")
        seen.add(custom_id)
    now = state.now()
    batch = Batch(
        batch_id=new_id("msgbatch_"),
        api_key_scope=scope,
        requests=requests,
        created_at=now,
        ends_at=now + state.config.batch_seconds,
    )
    state.batches[batch.batch_id] = batch
    return batch


def _ended(state: SandboxState, batch: Batch) -> bool:
    return batch.expired or state.now() >= batch.ends_at


def _answer(state: SandboxState, batch: Batch, api_version: str) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    for request in batch.requests:
        custom_id = request["custom_id"]
        if batch.expired:
            results.append({"custom_id": custom_id, "result": {"type": "expired"}})
            continue
        if batch.cancel_initiated_at is not None:
            results.append({"custom_id": custom_id, "result": {"type": "canceled"}})
            continue
        try:
            params = validate_create(request["params"], api_version)
            if params.get("stream"):
                raise invalid("stream: Batch requests cannot be streamed")
            message = create_message(state, params, batch.api_key_scope, service_tier="batch")
        except ApiError as exc:
            error = {"type": "error", "error": {"type": exc.error_type, "message": exc.message}}
            results.append({"custom_id": custom_id, "result": {"type": "errored", "error": error}})
            continue
        results.append({"custom_id": custom_id, "result": {"type": "succeeded", "message": message}})
    return results


def batch_results(state: SandboxState, batch: Batch, api_version: str) -> list[dict[str, Any]]:
    """The per-request results of an ended batch, computed once."""
    if batch.results is None:
        batch.results = _answer(state, batch, api_version)
    return batch.results


def batch_object(state: SandboxState, batch: Batch, origin: str, api_version: str) -> dict[str, Any]:
    """The batch as the API shows it; ending it (and answering its requests) once its time has come."""
    ended = _ended(state, batch)
    counts = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
    if ended:
        for result in batch_results(state, batch, api_version):
            counts[result["result"]["type"]] += 1
        status = "ended"
    else:
        counts["processing"] = len(batch.requests)
        status = "canceling" if batch.cancel_initiated_at is not None else "in_progress"
    return {
        "id": batch.batch_id,
        "type": "message_batch",
        "processing_status": status,
        "request_counts": counts,
        "created_at": rfc3339(batch.created_at),
        "expires_at": rfc3339(batch.created_at + EXPIRY_SECONDS),
        "ended_at": rfc3339(min(batch.ends_at, state.now())) if ended else None,
        "cancel_initiated_at": rfc3339(batch.cancel_initiated_at),
        "archived_at": None,
        "results_url": f"{origin}/v1/messages/batches/{batch.batch_id}/results" if ended else None,
    }


def batch_get(state: SandboxState, batch_id: str, scope: str) -> Batch:
    batch = state.batches.get(batch_id)
    if batch is None or batch.api_key_scope != scope:
        raise ApiError(404, "not_found_error", f"message_batch_id: {batch_id} not found")
    return batch


CANCEL_SECONDS = 0.5  # how long a canceled batch stays `canceling` before it ends


def batch_cancel(state: SandboxState, batch: Batch) -> None:
    if not _ended(state, batch) and batch.cancel_initiated_at is None:
        batch.cancel_initiated_at = state.now()
        batch.ends_at = min(batch.ends_at, batch.cancel_initiated_at + CANCEL_SECONDS)


def batch_delete(state: SandboxState, batch: Batch) -> None:
    if not _ended(state, batch):
        raise invalid(f"Batch {batch.batch_id} cannot be deleted while it is still processing; cancel it first.")
    del state.batches[batch.batch_id]


def batch_expire(state: SandboxState, batch: Batch) -> None:
    """Sandbox control: end the batch now with every request expired (the 24-hour limit, simulated)."""
    if not _ended(state, batch):
        batch.expired = True
        batch.ends_at = state.now()


def batch_page(
    state: SandboxState, scope: str, *, limit: int, after_id: str | None, before_id: str | None
) -> dict[str, Any]:
    """Newest first, paged like the API: `after_id` continues a listing, `before_id` goes back."""
    ordered = sorted(
        (batch for batch in state.batches.values() if batch.api_key_scope == scope),
        key=lambda batch: batch.created_at,
        reverse=True,
    )
    ids = [batch.batch_id for batch in ordered]
    if after_id is not None:
        start = ids.index(after_id) + 1 if after_id in ids else len(ids)
        page = ordered[start : start + limit]
        has_more = start + limit < len(ordered)
    elif before_id is not None:
        end = ids.index(before_id) if before_id in ids else 0
        page = ordered[max(end - limit, 0) : end]
        has_more = end - limit > 0
    else:
        page = ordered[:limit]
        has_more = limit < len(ordered)
    return {
        "page": page,
        "has_more": has_more,
        "first_id": page[0].batch_id if page else None,
        "last_id": page[-1].batch_id if page else None,
    }
