"""Message Batches on the Anthropic-compatible endpoint (docs/anthropic.md): `client.messages.batches` of the
official SDK, on Tollgate's own batch machinery (gateway.batches) — reserved and charged at the batch price,
one ledger row per request, results sealed, collected by the same poll.

A batch runs one released prompt: every request names the same `"model": "prompt:<slug>"`, and each
request's `params` is accepted as a single call's body is (`messages_intake`: checked, redacted with a
mapping of its own), except that it cannot stream and carries no `metadata`. The body accepted is what is
sent, at the version's model (its routing rules do not apply to a batch). Any batch of the client is shown
in Anthropic's MessageBatch shape, its results as Anthropic's result lines, the text rehydrated.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, Q, QuerySet
from django.urls import reverse
from django.utils import timezone

from core.errors import DomainError
from core.problems import ERROR_TYPES
from gateway.batches import MAX_ITEMS, OPEN, BatchRequest, batch_accept, batch_for_client, custom_id_problem
from gateway.choices import ItemStatus
from gateway.compat.intake import PROMPT_PREFIX, messages_intake
from gateway.models import Batch, BatchItem
from gateway.sealing import unsealed
from keys.models import ApiClient
from prompts.models import PromptVersion

PAGE_LIMIT, PAGE_LIMIT_MAX = 20, 1000
# Anthropic ends every batch within 24 hours of its creation: a request not processed by then expires.
BATCH_LIFETIME = timedelta(hours=24)
ERROR_OBJECT_TYPES = frozenset(ERROR_TYPES.values())


def _model_of(request: Any) -> Any:
    params = request.get("params") if isinstance(request, dict) else None
    return params.get("model") if isinstance(params, dict) else None


def message_batch_create(client: ApiClient, body: Any) -> Batch:
    """Accept every request of the batch (or refuse the whole batch: one 400 naming each bad request,
    nothing stored or sent), then reserve, store and submit it as Tollgate's batches are."""
    if not isinstance(body, dict) or set(body) != {"requests"}:
        raise DomainError("The body is an object with `requests` only.")
    requests = body["requests"]
    if not isinstance(requests, list) or not 1 <= len(requests) <= MAX_ITEMS:
        raise DomainError(f"requests: a list of 1 to {MAX_ITEMS} requests.")
    model = _model_of(requests[0])
    if not isinstance(model, str) or not model.startswith(PROMPT_PREFIX):
        raise DomainError(
            f'A batch runs one released prompt: every request names it as "model": "{PROMPT_PREFIX}<slug>" '
            "(free-form batches are not accepted).",
            extra={"errors": {"requests[0].params.model": f"{PROMPT_PREFIX}<slug>"}},
        )
    seen: set[str] = set()
    errors: dict[str, Any] = {}
    accepted: list[BatchRequest] = []
    version: PromptVersion | None = None
    for index, request in enumerate(requests):
        field = f"requests[{index}]"
        if not isinstance(request, dict) or set(request) != {"custom_id", "params"}:
            errors[field] = "each request is an object with `custom_id` and `params`"
            continue
        if problem := custom_id_problem(request["custom_id"], seen):
            errors[f"{field}.custom_id"] = problem
            continue
        if _model_of(request) != model:
            errors[f"{field}.params.model"] = f"every request of a batch names the same prompt ('{model[:80]}')"
            continue
        try:
            call = messages_intake(client, request["params"])
        except DomainError as exc:
            if exc.status != 400:  # the prompt's or the client's (not found, not allowed): the whole batch's
                exc.detail = f"{field}.params: {exc.detail}"
                raise
            errors[f"{field}.params"] = exc.extra.get("errors") or exc.detail
            continue
        assert call.version is not None  # prompt-bound: its model names a prompt
        version = version or call.version
        if call.stream:
            errors[f"{field}.params.stream"] = "a batch request cannot be streamed"
        elif call.metadata:
            errors[f"{field}.params.metadata"] = "not accepted in a batch request"
        elif call.version != version:
            errors[f"{field}.params.model"] = "the prompt's release changed while the batch was read: send it again"
        else:
            params = {**call.params, "model": version.model}
            accepted.append(BatchRequest(custom_id=request["custom_id"], params=params, stored=params,
                                         redaction=call.redaction, cache_ttl=call.cache_ttl))  # fmt: skip
    if errors:
        named = ", ".join(list(errors)[:5]) + (", …" if len(errors) > 5 else "")
        raise DomainError(
            f"{len(errors)} of {len(requests)} requests are invalid ({named}); nothing was submitted. See `errors`.",
            extra={"errors": errors},
        )
    assert version is not None  # every request was accepted
    batch = batch_accept(client=client, version=version, requests=accepted, metadata={})
    batch.refresh_from_db()  # an in-process submission (no broker) has run already
    return batch


# --- the batch as Anthropic shows it ----------------------------------------------------------------------


def _time(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def _archived(batch: Batch) -> bool:
    """Its results are gone (TOLLGATE_BODY_RETENTION_DAYS after it ended)."""
    return batch.result_expires_at is not None and batch.result_expires_at <= timezone.now()


def _document(batch: Batch, counts: Counter[str], origin: str) -> dict[str, Any]:
    ended = batch.status not in OPEN
    archived = _archived(batch)
    results = reverse("anthropic:message-batch-results", args=[batch.public_id])
    return {
        "id": batch.public_id,
        "type": "message_batch",
        "processing_status": "ended" if ended else batch.status,  # a batch that failed to be sent ended
        "request_counts": {
            "processing": counts[ItemStatus.PENDING],
            **{status: counts[status] for status in ("succeeded", "errored", "canceled", "expired")},
        },
        "created_at": _time(batch.created_at),
        "ended_at": _time(batch.ended_at),
        "expires_at": _time(batch.created_at + BATCH_LIFETIME),
        "cancel_initiated_at": _time(batch.cancel_initiated_at),
        "archived_at": _time(batch.result_expires_at) if archived else None,
        "results_url": f"{origin}{results}" if ended and not archived else None,
    }


def _counts(batches: list[Batch]) -> dict[int, Counter[str]]:
    """The items per status of each batch, in one query."""
    counts: dict[int, Counter[str]] = {batch.pk: Counter() for batch in batches}
    rows = (
        BatchItem.objects.filter(batch__in=batches).values_list("batch_id", "status").annotate(n=Count("id")).order_by()
    )
    for batch_id, status, n in rows:
        counts[batch_id][status] = n
    return counts


def message_batch_document(batch: Batch, *, origin: str) -> dict[str, Any]:
    """The batch in Anthropic's MessageBatch shape; `origin` (scheme and host) makes `results_url` absolute."""
    return _document(batch, _counts([batch])[batch.pk], origin)


def message_batch_page(
    client: ApiClient, *, after_id: str | None, before_id: str | None, limit: str | None, origin: str
) -> dict[str, Any]:
    """The client's batches, newest first, in Anthropic's page shape: `after_id` continues a listing,
    `before_id` goes back."""
    try:
        size = PAGE_LIMIT if limit is None else int(limit)
    except ValueError:
        size = 0
    if not 1 <= size <= PAGE_LIMIT_MAX:
        raise DomainError(f"limit: an integer from 1 to {PAGE_LIMIT_MAX}.", extra={"errors": {"limit": "1 to 1000"}})
    if after_id and before_id:
        raise DomainError("Give `after_id` or `before_id`, not both.")
    batches: QuerySet[Batch] = Batch.objects.filter(api_client=client)
    if before_id:
        anchor = batch_for_client(client=client, batch_id=before_id)
        newer = Q(created_at__gt=anchor.created_at) | Q(created_at=anchor.created_at, pk__gt=anchor.pk)
        batches = batches.filter(newer).order_by("created_at", "pk")
    else:
        if after_id:
            anchor = batch_for_client(client=client, batch_id=after_id)
            older = Q(created_at__lt=anchor.created_at) | Q(created_at=anchor.created_at, pk__lt=anchor.pk)
            batches = batches.filter(older)
        batches = batches.order_by("-created_at", "-pk")
    page = list(batches[: size + 1])
    has_more, page = len(page) > size, page[:size]
    if before_id:
        page.reverse()
    counts = _counts(page)
    data = [_document(batch, counts[batch.pk], origin) for batch in page]
    return {
        "data": data,
        "has_more": has_more,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    }


# --- results ----------------------------------------------------------------------------------------------


def message_batch_results(batch: Batch) -> Iterator[str]:
    """The results as Anthropic's JSON Lines (one per request, in the order sent), once the batch ended and
    while they are kept."""
    if batch.status in OPEN:
        raise DomainError(f"Batch {batch.public_id} is {batch.status}: its results come once it has ended.")
    if _archived(batch):
        raise DomainError(f"The results of batch {batch.public_id} are no longer kept.")
    return _result_lines(batch)


def _result_lines(batch: Batch) -> Iterator[str]:
    items = batch.items.only("custom_id", "status", "result_ciphertext", "result_kek_id", "error")
    for item in items.iterator():
        line = {"custom_id": item.custom_id, "result": _result(batch, item)}
        yield json.dumps(line, ensure_ascii=False) + "\n"


def _result(batch: Batch, item: BatchItem) -> dict[str, Any]:
    if item.status in (ItemStatus.CANCELED, ItemStatus.EXPIRED):
        return {"type": item.status}
    if item.status == ItemStatus.SUCCEEDED and item.result_ciphertext:
        call_id = f"{batch.public_id}/{item.custom_id}"
        stored = json.loads(
            unsealed("batch_item", call_id, batch.environment, item.result_ciphertext, item.result_kek_id)
        )
        return {"type": "succeeded", "message": _message(batch, stored)}
    error = item.error or {}
    if error.get("type") in ERROR_OBJECT_TYPES:  # Anthropic's own error for this request
        problem = {"type": error["type"], "message": error.get("message", "")}
    else:  # never answered: its part of the batch could not be sent
        problem = {"type": "api_error", "message": error.get("detail") or "The request was not submitted."}
    return {"type": "errored", "error": {"type": "error", "error": problem}}


def _message(batch: Batch, stored: dict[str, Any]) -> dict[str, Any]:
    """Anthropic's message from an item's stored result (its output rehydrated)."""
    usage = stored["usage"]
    return {
        "id": stored.get("message_id", ""),
        "type": "message",
        "role": "assistant",
        "model": stored.get("model", batch.version.model),
        "content": [{"type": "text", "text": stored["output"]}] if stored["output"] else [],
        "stop_reason": stored["stop_reason"],
        "stop_sequence": stored.get("stop_sequence"),
        "usage": {
            "input_tokens": usage["input_tokens"],
            "output_tokens": usage["output_tokens"],
            "cache_creation_input_tokens": usage.get("cache_creation_input_tokens", 0),
            "cache_read_input_tokens": usage.get("cache_read_input_tokens", 0),
            "service_tier": "batch",
        },
    }
