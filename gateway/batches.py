"""Batches (docs/contract.md §6): many variable sets through Anthropic's Message Batches API at the batch price.

Accepting a batch validates every item first (one 400 naming each bad item; nothing is stored or sent),
redacts each item with a mapping of its own, and reserves the worst case at the batch price. A worker then
submits the requests through the SDK, split into several provider batches when they exceed the API's
limits. A beat task polls; when every provider batch has ended it writes one ledger row per item at the
batch price, settles the reservation with the real cost, stores each item's rehydrated result sealed,
drops the mappings and fires the callback. The Anthropic-compatible endpoint's batches (gateway.compat.
batches) are accepted as whole Messages API bodies and go the same way from `batch_accept` on.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import islice
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core.context import new_request_id
from core.errors import (
    BatchNotCancelable,
    BatchNotFound,
    DomainError,
    InvalidVariables,
    NoProviderKey,
    RoleRequired,
    SpendCapExceeded,
    UpstreamNotAllowed,
)
from core.locks import held_alone
from core.tasks import BrokerUnreachable, task_enqueue, task_enqueue_on_commit
from gateway.checks import output_checks_run
from gateway.choices import BatchStatus, ItemStatus
from gateway.egress import callback_url_validate
from gateway.models import Batch, BatchItem
from gateway.pipeline import caps_for, message_params, metadata_fields, metadata_intake, public_id, worst_case_cost
from gateway.redaction.engine import Redaction, custom_patterns, redact_variables
from gateway.sealing import sealed_for, unsealed
from gateway.upstream import (
    UPSTREAM_FAILURES,
    classify,
    message_batch_cancel,
    message_batch_results,
    message_batch_submit,
    message_batches_ended,
    provider_key_check,
)
from gateway.webhooks import webhook_enqueue
from keys.models import ApiClient
from keys.selectors import active_provider_key
from prompts.models import PromptVersion
from prompts.rendering import render_values, variables_validate
from prompts.services import released_version_for_run
from prompts.specs import output_checks_of, redaction_of
from usage.choices import Endpoint, Outcome, ReservationStatus
from usage.models import Price, SpendReservation
from usage.pricing import TokenUsage, cost
from usage.selectors import decimal_text, price_for
from usage.settlement import call_settle, spend_reserve

logger = logging.getLogger(__name__)

MAX_ITEMS = 100_000
# The Message Batches API takes at most 100,000 requests or 256 MB per batch; larger sets are split.
PROVIDER_MAX_REQUESTS = 100_000
PROVIDER_MAX_BYTES = 256 * 1000 * 1000 - 1_000_000  # a margin for the JSON around the requests
CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
# A batch's hold lasts until its results are collected: Anthropic ends every batch within 24 hours, and
# results are collected at the next poll. Past this the holder is presumed dead and the hold reaped.
BATCH_RESERVATION_TTL = timedelta(hours=30)
OPEN = (BatchStatus.IN_PROGRESS, BatchStatus.CANCELING)
# Results settled per transaction while a batch is collected: the batch row stays locked for that long.
COLLECT_CHUNK = 500

BATCH_SUBMIT_TASK = "prompts.tasks.batch_submit"


# --- accepting a batch ------------------------------------------------------------------------------------


def custom_id_problem(custom_id: Any, seen: set[str]) -> str | None:
    """What is wrong with a request's custom_id (None: nothing); a good one is added to `seen`."""
    if not isinstance(custom_id, str) or not CUSTOM_ID.match(custom_id):
        return "custom_id: 1 to 64 letters, digits, '-' or '_'"
    readable = custom_id.replace("_", " ")  # "_" glues words in an id: read them apart
    if Redaction().redact_text(readable) != readable:  # ids are sent upstream and stored as they are
        return "custom_id looks like personal data: use an opaque id"
    if custom_id in seen:
        return f"custom_id '{custom_id}' appears more than once"
    seen.add(custom_id)
    return None


def _item_errors(item: Any, seen: set[str], schema: list[dict[str, Any]]) -> dict[str, Any] | str | None:
    if not isinstance(item, dict) or set(item) - {"custom_id", "variables"}:
        return "each item is an object with `custom_id` and `variables`"
    if problem := custom_id_problem(item.get("custom_id"), seen):
        return problem
    try:
        variables_validate(schema, item.get("variables"))
    except InvalidVariables as exc:
        return exc.errors
    return None


@dataclass(frozen=True)
class BatchRequest:
    """One request of a batch as accepted: `params` is the body sent (redacted), `stored` what its item
    keeps to send it (a prompt's rendered messages, or the whole body: see `_params`), `redaction` the
    mapping that rehydrates its answer, `cache_ttl` the dearest cache write it may make."""

    custom_id: str
    params: dict[str, Any]
    stored: list[dict[str, Any]] | dict[str, Any]
    redaction: Redaction
    cache_ttl: str


def batch_create(
    *, client: ApiClient, slug: str, items: Any, metadata: dict[str, str], callback_url: str = ""
) -> Batch:
    """Validate all items (or refuse the whole batch), redact, reserve at the batch price, store, enqueue
    the submission."""
    version = released_version_for_run(slug=slug, environment=client.environment)
    if not client.may_run(slug):
        raise RoleRequired(f"This API client may not run '{slug}'.")
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_ITEMS:
        raise DomainError(f"items must be a list of 1 to {MAX_ITEMS} objects.")
    callback_url = callback_url_validate(callback_url)
    seen: set[str] = set()
    errors = {
        f"items[{index}]": problem
        for index, item in enumerate(items)
        if (problem := _item_errors(item, seen, version.variables)) is not None
    }
    if errors:
        raise DomainError(
            f"{len(errors)} of {len(items)} items are invalid; nothing was submitted. See `errors`.",
            extra={"errors": errors},
        ) from None
    metadata = metadata_intake(metadata)
    extra = custom_patterns(redaction_of(version))
    requests = []
    for item in items:
        values, redaction = redact_variables(version.variables, item["variables"], extra)
        rendered = render_values(
            system_prompt=version.system_prompt, user_template=version.user_template, values=values
        )
        requests.append(
            BatchRequest(
                custom_id=item["custom_id"],
                params=_version_params(version, rendered.messages),
                stored=rendered.messages,
                redaction=redaction,
                cache_ttl=version.cache_ttl,
            )
        )
    return batch_accept(client=client, version=version, requests=requests, metadata=metadata, callback_url=callback_url)


def batch_accept(
    *,
    client: ApiClient,
    version: PromptVersion,
    requests: list[BatchRequest],
    metadata: dict[str, str],
    callback_url: str = "",
) -> Batch:
    """Reserve the worst case of the accepted `requests` (validated and redacted) at the batch price, or
    record the cap's refusal (SpendCapExceeded); then store the batch, its items and their sealed mappings,
    and enqueue the submission."""
    key = active_provider_key(environment=client.environment)
    if key is None:
        raise NoProviderKey(f"No active provider key is configured for {client.environment}.")
    provider_key_check(key)
    output_checks_of(version)  # read when the results come: a setting its spec refuses stops the batch here
    batch = Batch(
        public_id=public_id("batch_"),
        api_client=client,
        environment=client.environment,
        prompt_id=version.prompt_id,
        version=version,
        provider_key=key,
        request_id=new_request_id(),
        metadata=metadata,
        callback_url=callback_url,
    )
    # Reserved, and later charged, at the price in force when the batch was accepted (its items are sent
    # then), whatever the price book says by the time the results are collected.
    price = price_for(version.model, at=batch.created_at)
    worst_case = sum(
        (worst_case_cost(price, request.params, cache_ttl=request.cache_ttl, batch=True) for request in requests),
        Decimal(0),
    )
    mappings = {request.custom_id: request.redaction.to_json() for request in requests}
    sealed = sealed_for("batch_mapping", batch.public_id, batch.environment, json.dumps(mappings))
    batch.mapping_ciphertext, batch.mapping_kek_id = sealed.ciphertext, sealed.key_id
    try:
        spend_reserve(
            request_id=batch.request_id, caps=caps_for(key, client), amount=worst_case, ttl=BATCH_RESERVATION_TTL
        )
    except SpendCapExceeded:
        call_settle(
            record={
                **_ledger_base(batch, key_last_four=key.last_four),
                "model": version.model,
                "outcome": Outcome.CAP_EXCEEDED,
            }
        )
        raise
    with transaction.atomic():
        batch.save()
        items = [BatchItem(batch=batch, custom_id=r.custom_id, request_redacted=r.stored) for r in requests]
        BatchItem.objects.bulk_create(items, batch_size=1000)
        task_enqueue_on_commit(BATCH_SUBMIT_TASK, batch.pk, swept=True)
    return batch


def _ledger_base(batch: Batch, *, key_last_four: str) -> dict[str, Any]:
    return {
        "request_id": batch.request_id,
        "environment": batch.environment,
        "api_client_id": batch.api_client_id,
        "api_client_name": batch.api_client.name,
        "provider_key_id": batch.provider_key_id,
        "provider_key_last_four": key_last_four,
        "prompt_id": batch.prompt_id,
        "prompt_slug": batch.version.prompt.slug,
        "prompt_version": batch.version.number,
        "endpoint": Endpoint.BATCH,
        "requested_model": batch.version.model,
        **metadata_fields(batch.metadata),
    }


def _version_params(version: PromptVersion, messages: list[dict[str, Any]]) -> dict[str, Any]:
    return message_params(version, model=version.model, system=version.system_prompt, messages=messages)


def _params(batch: Batch, stored: list[dict[str, Any]] | dict[str, Any]) -> dict[str, Any]:
    """The body an item sends: an item of a prompt's variables keeps its rendered messages (the version
    supplies the rest); an item accepted as a whole Messages API body (docs/anthropic.md) keeps that body."""
    return stored if isinstance(stored, dict) else _version_params(batch.version, stored)


def chunks(requests: Iterator[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    """Requests grouped under the API's per-batch limits (count and bytes)."""
    chunk: list[dict[str, Any]] = []
    size = 0
    for request in requests:
        length = len(json.dumps(request, ensure_ascii=False).encode())
        if chunk and (len(chunk) >= PROVIDER_MAX_REQUESTS or size + length > PROVIDER_MAX_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append(request)
        size += length
    if chunk:
        yield chunk


def batch_submit_chunks(batch_id: int) -> None:
    """Send the batch's requests to Anthropic, once: a message delivered again, or queued again by the
    poller, finds them sent, or being sent by another worker. A batch canceled before it was sent ends
    here, canceled, its hold given back; one canceled while it was being sent is canceled at Anthropic
    once sent."""
    with held_alone("batch_submit", batch_id) as alone:
        if alone:
            _submit(Batch.objects.select_related("api_client", "version__prompt", "provider_key").get(pk=batch_id))


def _submit(batch: Batch) -> None:
    if batch.status == BatchStatus.CANCELING and not batch.provider_batch_ids:
        _end_unsent(batch, status=BatchStatus.ENDED, item_status=ItemStatus.CANCELED, error={"type": "canceled"})
        return
    if batch.provider_batch_ids or batch.status != BatchStatus.IN_PROGRESS:
        return
    # From here Anthropic may accept a chunk before its id is recorded: the sweeper must never send the
    # batch again (it would be sent and paid for twice), so it is no longer due.
    Batch.objects.filter(pk=batch.pk).update(due_at=SENDING_STARTED)
    items = batch.items.only("custom_id", "request_redacted").iterator()
    requests = ({"custom_id": item.custom_id, "params": _params(batch, item.request_redacted)} for item in items)
    ids: list[str] = []
    try:
        for chunk in chunks(requests):
            ids.append(message_batch_submit(batch.provider_key, chunk))
            Batch.objects.filter(pk=batch.pk).update(provider_batch_ids=ids)
    except UpstreamNotAllowed as exc:
        _end_unsent(batch, status=BatchStatus.FAILED, item_status=ItemStatus.ERRORED,
                    error={"code": exc.code, "detail": exc.detail})  # fmt: skip
        return
    except UPSTREAM_FAILURES as exc:
        failure = classify(exc)
        call_settle(
            record={
                **_ledger_base(batch, key_last_four=batch.provider_key.last_four),
                "model": batch.version.model,
                "outcome": failure.outcome,
                "error_class": type(exc).__name__,
            }
        )
        if ids:
            logger.error("Batch %s: %d provider batches sent before %s; polling them", batch, len(ids), failure.code)
            return
        _end_unsent(batch, status=BatchStatus.FAILED, item_status=ItemStatus.ERRORED,
                    error={"code": failure.code, "detail": failure.detail})  # fmt: skip
        return
    if Batch.objects.filter(pk=batch.pk, status=BatchStatus.CANCELING).exists():
        for provider_batch_id in ids:  # the caller canceled while the batch was being sent
            message_batch_cancel(batch.provider_key, provider_batch_id)


def _end_unsent(batch: Batch, *, status: str, item_status: str, error: dict[str, Any]) -> None:
    """A batch that never reached Anthropic ends: nothing was spent, its hold is given back."""
    _reservation_release(batch)
    with transaction.atomic():
        Batch.objects.filter(pk=batch.pk).update(status=status, ended_at=timezone.now(), mapping_ciphertext="",
                                                 mapping_kek_id="")  # fmt: skip
        BatchItem.objects.filter(batch=batch).update(status=item_status, error=error)
        if batch.callback_url:
            webhook_enqueue("batch", batch.pk)


def _reservation_release(batch: Batch) -> None:
    reservation = SpendReservation.objects.filter(request_id=batch.request_id, status=ReservationStatus.HELD).first()
    if reservation is not None:
        call_settle(record=None, reservation=reservation)


# A batch's due time once a worker started sending it: never, for the sweeper.
SENDING_STARTED = datetime(9999, 1, 1, tzinfo=UTC)


# --- polling and results ----------------------------------------------------------------------------------


def batches_redispatch() -> int:
    """Queue again the sending of each batch not sent TOLLGATE_REDISPATCH_SECONDS after it was due (accepted,
    or queued again: its message lost; the beat task `redispatch`). Returns how many were queued."""
    now = timezone.now()
    stale = now - timedelta(seconds=settings.TOLLGATE_REDISPATCH_SECONDS)
    unsent = Batch.objects.filter(
        status__in=[BatchStatus.IN_PROGRESS, BatchStatus.CANCELING], provider_batch_ids=[], due_at__lt=stale
    )
    queued = []
    for pk, public in unsent.values_list("pk", "public_id"):
        try:
            task_enqueue(BATCH_SUBMIT_TASK, pk)
        except BrokerUnreachable:
            break  # the next sweep tries again
        logger.warning("Batch %s: not sent since it was due; queued again", public)
        queued.append(pk)
    Batch.objects.filter(pk__in=queued).update(due_at=now)
    return len(queued)


def batches_poll() -> int:
    """Check every open batch (the beat task); returns how many ended now."""
    open_batches = Batch.objects.filter(status__in=[BatchStatus.IN_PROGRESS, BatchStatus.CANCELING]).exclude(
        provider_batch_ids=[]
    )
    ended = 0
    for batch in open_batches.select_related("api_client", "version__prompt", "provider_key"):
        try:
            ended += batch_poll(batch)
        except Exception:  # one batch that cannot be collected never holds up the others
            logger.exception("Batch %s: collection failed; will retry", batch)
    return ended


def batch_poll(batch: Batch) -> bool:
    """Collect the batch's results if all its provider batches have ended. True when it ended now."""
    if batch.status not in (BatchStatus.IN_PROGRESS, BatchStatus.CANCELING) or not batch.provider_batch_ids:
        return False
    try:
        ended = message_batches_ended(batch.provider_key, batch.provider_batch_ids)
    except UPSTREAM_FAILURES as exc:
        logger.warning("Batch %s: polling failed (%s); will retry", batch, type(exc).__name__)
        return False
    if ended:
        batch_results_collect(batch)
    return ended


def batch_results_collect(batch: Batch) -> None:
    """One ledger row per item at the batch price, the reservation settled, results sealed — once, however
    often the collection runs: again after a crash, or overlapping another poll's. Results are settled in
    chunks, each in one transaction under a lock on the batch row (one collector at a time) that settles
    only the items still pending: their rows (unique per item) with their cost added to the batch's
    reservation (`call_settle`, shared). The last transaction closes the reservation at what the items
    added, and ends the batch. A collection that finds the batch ended has nothing left to do."""
    sealed_mapping = (
        Batch.objects.filter(pk=batch.pk, status__in=OPEN).values_list("mapping_ciphertext", "mapping_kek_id").first()
    )
    if sealed_mapping is None:
        return  # collected already
    mappings = json.loads(unsealed("batch_mapping", batch.public_id, batch.environment, *sealed_mapping))
    reservation = SpendReservation.objects.filter(request_id=batch.request_id).first()
    for provider_batch_id in batch.provider_batch_ids:
        entries = message_batch_results(batch.provider_key, provider_batch_id)
        while chunk := list(islice(entries, COLLECT_CHUNK)):  # read before the chunk's transaction opens
            if not _results_settle(batch, chunk, mappings=mappings, reservation=reservation):
                return  # another collection ended the batch meanwhile
    _collection_end(batch, reservation)


def _claimed(batch: Batch) -> bool:
    """Lock the batch row for this transaction: True while the batch is still to be collected."""
    return Batch.objects.select_for_update().filter(pk=batch.pk, status__in=OPEN).values_list("pk").first() is not None


def _results_settle(
    batch: Batch, entries: list[Any], *, mappings: dict[str, Any], reservation: SpendReservation | None
) -> bool:
    """Settle one chunk of results: the items still pending get their status, sealed result and ledger row.
    False when the batch was ended meanwhile."""
    price, version = price_for(batch.version.model, at=batch.created_at), batch.version
    base = _ledger_base(batch, key_last_four=batch.provider_key.last_four)
    with transaction.atomic():
        if not _claimed(batch):
            return False
        pending = {
            item.custom_id: item
            for item in batch.items.filter(
                custom_id__in=[entry.custom_id for entry in entries], status=ItemStatus.PENDING
            )
        }
        settled: list[BatchItem] = []
        for entry in entries:
            item = pending.pop(entry.custom_id, None)
            if item is None:  # settled by an earlier collection (or not this batch's)
                continue
            settled.append(item)
            record = _item_result(batch, item, entry, redaction=Redaction.from_json(mappings[item.custom_id]),
                                  price=price, version=version)  # fmt: skip
            if record is not None:
                call_settle(record={**base, **record}, reservation=reservation, shared=True)
        BatchItem.objects.bulk_update(settled, ["status", "result_ciphertext", "result_kek_id", "error"])
    return True


def _item_result(
    batch: Batch, item: BatchItem, entry: Any, *, redaction: Redaction, price: Price, version: PromptVersion
) -> dict[str, Any] | None:
    """Set the item's status and sealed result from its entry; returns its ledger row's own fields (None:
    never processed, never billed)."""
    item.status = entry.result.type
    call_id = f"{batch.public_id}/{item.custom_id}"
    if entry.result.type == "succeeded":
        message = entry.result.message
        usage = TokenUsage.from_api(message.usage)
        charged = cost(price, usage, batch=True)
        output = redaction.rehydrate("".join(b.text for b in message.content if b.type == "text"))
        checks = output_checks_run(output_checks_of(version), output)
        result = {
            "custom_id": item.custom_id,
            "status": "succeeded",
            "model": message.model,
            "message_id": message.id,
            "output": output,
            "stop_reason": message.stop_reason,
            "stop_sequence": message.stop_sequence,
            "usage": {
                "input_tokens": usage.input_tokens,
                "output_tokens": usage.output_tokens,
                "cache_creation_input_tokens": usage.cache_write_5m_tokens + usage.cache_write_1h_tokens,
                "cache_read_input_tokens": usage.cache_read_tokens,
            },
            "cost_usd": decimal_text(charged),
            "redactions": redaction.as_counts(),
            "checks": checks,
        }
        sealed = sealed_for("batch_item", call_id, batch.environment, json.dumps(result))
        item.result_ciphertext, item.result_kek_id = sealed.ciphertext, sealed.key_id
        return {
            "call_id": call_id,
            "model": message.model,
            **usage.ledger_fields(),
            "cost_usd": charged,
            "default_model_cost_usd": charged,
            "price": price,
            "outcome": Outcome.OK,
            "upstream_request_id": message.id,
            "stop_reason": message.stop_reason or "",
            "redactions": redaction.as_counts(),
            "checks": checks,
        }
    if entry.result.type == "errored":
        error = entry.result.error.error
        item.error = {"type": error.type, "message": error.message[:300]}
        return {
            "call_id": call_id,
            "model": version.model,
            "outcome": Outcome.CLIENT_ERROR if error.type == "invalid_request_error" else Outcome.SERVER_ERROR,
            "error_class": error.type,
            "redactions": redaction.as_counts(),
        }
    item.error = {"type": entry.result.type}  # canceled or expired: never processed, never billed
    return None


def _collection_end(batch: Batch, reservation: SpendReservation | None) -> None:
    """Every result is settled: items in no result end errored (their part was never submitted), the
    reservation closes at what the items added, the batch ends, its callback is queued — once."""
    now = timezone.now()
    with transaction.atomic():
        if not _claimed(batch):
            return
        batch.items.filter(status=ItemStatus.PENDING).update(status=ItemStatus.ERRORED, error={"type": "not_submitted"})
        if reservation is not None:
            reservation.refresh_from_db(fields=["settled_usd"])
            call_settle(record=None, reservation=reservation, spent=reservation.settled_usd or Decimal(0))
        Batch.objects.filter(pk=batch.pk).update(
            status=BatchStatus.ENDED,
            ended_at=now,
            mapping_ciphertext="",
            mapping_kek_id="",
            result_expires_at=now + timedelta(days=settings.TOLLGATE_BODY_RETENTION_DAYS),
        )
        if batch.callback_url:
            webhook_enqueue("batch", batch.pk)


def batch_cancel(*, batch: Batch) -> Batch:
    """Ask Anthropic to cancel; items not yet processed end as `canceled` and cost nothing."""
    if batch.status != BatchStatus.IN_PROGRESS:
        raise BatchNotCancelable(f"Batch {batch.public_id} is {batch.status}.")
    for provider_batch_id in batch.provider_batch_ids:
        message_batch_cancel(batch.provider_key, provider_batch_id)
    Batch.objects.filter(pk=batch.pk, status=BatchStatus.IN_PROGRESS).update(
        status=BatchStatus.CANCELING, cancel_initiated_at=timezone.now()
    )
    batch.refresh_from_db()
    return batch


# --- reading ----------------------------------------------------------------------------------------------


def batch_for_client(*, client: ApiClient, batch_id: str) -> Batch:
    batch = (
        Batch.objects.select_related("api_client", "version__prompt", "provider_key")
        .filter(public_id=batch_id, api_client=client)
        .first()
    )
    if batch is None:
        raise BatchNotFound(f"This client has no batch '{batch_id[:40]}'.")
    return batch


def batch_current(*, client: ApiClient, batch_id: str) -> Batch:
    """The client's batch as it stands: without a worker (no beat polls: the embedded default) reading it
    polls it first."""
    batch = batch_for_client(client=client, batch_id=batch_id)
    if not settings.TOLLGATE_BROKER_CONFIGURED and batch_poll(batch):
        batch.refresh_from_db()
    return batch
