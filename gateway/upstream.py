"""The one way to Anthropic: every SDK call Tollgate makes is a function here (messages, streams,
message batches), through one pooled SDK client per provider key per process, and the mapping of upstream
failures to the API's error codes (docs/contract.md §6). A call raises one of UPSTREAM_FAILURES, or returns."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import anthropic
import httpx2
from anthropic.lib.streaming import MessageStream
from anthropic.types import Message
from anthropic.types.messages import MessageBatchIndividualResponse
from django.conf import settings
from django.db import connection

from core.errors import DomainError, UpstreamError, UpstreamNotAllowed, UpstreamRefused
from keys.models import ProviderKey
from keys.services import provider_key_secret
from keys.upstreams import upstream_url_allowed
from usage.choices import Outcome

logger = logging.getLogger(__name__)

# What an upstream call raises: the SDK's errors after its retries (classify() maps them to the API's codes).
UPSTREAM_FAILURES = (anthropic.APIError, anthropic.APIConnectionError)

_clients: dict[tuple[int, str, str, float, int], anthropic.Anthropic] = {}
_lock = threading.Lock()


def provider_key_check(key: ProviderKey) -> None:
    """Refuse to send a key anywhere but an allowed upstream: its base_url may have been edited in the
    database, or the allow-list narrowed, since it was saved."""
    if not upstream_url_allowed(key.base_url):
        logger.critical("Provider key %s points outside TOLLGATE_UPSTREAM_BASE_URLS; it was not sent", key.pk)
        raise UpstreamNotAllowed(f"The {key.environment} provider key's upstream is not an allowed one.")


def client_for(key: ProviderKey) -> anthropic.Anthropic:
    """The SDK client of `key`, made once per process (its connection pool is reused across requests).
    Every call to Anthropic gets its client here, so the allow-list is checked here, every time."""
    provider_key_check(key)
    timeout, retries = settings.TOLLGATE_UPSTREAM_TIMEOUT, settings.TOLLGATE_UPSTREAM_MAX_RETRIES
    cache_key = (key.pk, key.fingerprint, key.base_url, timeout, retries)
    client = _clients.get(cache_key)
    if client is None:
        with _lock:
            client = _clients.get(cache_key)
            if client is None:
                client = anthropic.Anthropic(
                    api_key=provider_key_secret(key=key),
                    base_url=key.base_url,
                    max_retries=retries,
                    timeout=httpx2.Timeout(timeout, connect=5.0),
                    # A redirect could carry the request (and on the same origin the key) outside the
                    # allow-list: it is answered as an error instead of followed.
                    http_client=anthropic.DefaultHttpxClient(follow_redirects=False),
                )
                _clients[cache_key] = client
    return client


def _release_connection() -> None:
    """Hand the database connection back to the pool before waiting on Anthropic (docs/contract.md §11)."""
    if not connection.in_atomic_block:
        connection.close()


@dataclass(frozen=True)
class Reply:
    """A message Anthropic answered, with how many retries the SDK made and Anthropic's request id."""

    message: Message
    retries: int
    request_id: str


def message_create(key: ProviderKey, params: dict[str, Any]) -> Reply:
    """One Messages API call (the database connection is released while it waits)."""
    sdk = client_for(key)
    _release_connection()
    raw = sdk.messages.with_raw_response.create(**params)
    return Reply(message=raw.parse(), retries=retries_of(raw), request_id=raw.headers.get("request-id", ""))


@contextmanager
def message_stream(key: ProviderKey, params: dict[str, Any]) -> Iterator[MessageStream]:
    """One streamed Messages API call: the SDK's stream (`text_stream`, `get_final_message()`, `response`,
    `current_message_snapshot`). The database connection is released while it flows."""
    sdk = client_for(key)
    _release_connection()
    with sdk.messages.stream(**params) as stream:
        yield stream


def message_count_tokens(key: ProviderKey, params: dict[str, Any]) -> int:
    """The input tokens of a Messages API body, counted by Anthropic (free of charge)."""
    sdk = client_for(key)
    _release_connection()
    return sdk.messages.count_tokens(**params).input_tokens


def message_batch_submit(key: ProviderKey, requests: list[dict[str, Any]]) -> str:
    """Create one Message Batch of `requests`; returns its id."""
    return client_for(key).messages.batches.create(requests=requests).id  # type: ignore[arg-type]


def message_batch_cancel(key: ProviderKey, provider_batch_id: str) -> None:
    client_for(key).messages.batches.cancel(provider_batch_id)


def message_batches_ended(key: ProviderKey, provider_batch_ids: Iterable[str]) -> bool:
    """Whether every one of these Message Batches has ended."""
    sdk = client_for(key)
    return all(sdk.messages.batches.retrieve(batch_id).processing_status == "ended" for batch_id in provider_batch_ids)


def message_batch_results(key: ProviderKey, provider_batch_id: str) -> Iterator[MessageBatchIndividualResponse]:
    """The results of an ended Message Batch, streamed (constant memory)."""
    yield from client_for(key).messages.batches.results(provider_batch_id)


@dataclass(frozen=True)
class UpstreamFailure:
    """How an upstream failure is recorded in the ledger and answered to the caller."""

    outcome: str
    status: int
    code: str
    title: str
    detail: str
    retry_after: int | None = None
    refusal: str | None = None  # Anthropic's own message when it refused the body as invalid (400, 413, 422)

    def error(self, *, caller_wrote_body: bool) -> DomainError:
        """The error to answer with: the caller's 400 `upstream_refused` when Anthropic refused a body the
        caller wrote (the Anthropic-compatible endpoint), else `UpstreamError` with this failure's code."""
        if self.refusal is not None and caller_wrote_body:
            return UpstreamRefused(f"Anthropic refused the request: {self.refusal}")
        return UpstreamError(self.detail, status=self.status, code=self.code, title=self.title,
                             retry_after=self.retry_after)  # fmt: skip


def retries_of(exc_or_response: object) -> int:
    """How many retries the SDK made, read from the header it sets on each attempt."""
    request = getattr(exc_or_response, "request", None) or getattr(exc_or_response, "http_request", None)
    response = getattr(exc_or_response, "response", None)
    if request is None and response is not None:
        request = getattr(response, "request", None)
    headers = getattr(request, "headers", None)
    try:
        return int(headers.get("x-stainless-retry-count", 0)) if headers is not None else 0
    except (TypeError, ValueError):
        return 0


def _retry_after(exc: anthropic.APIStatusError) -> int:
    value = exc.response.headers.get("retry-after") if exc.response is not None else None
    try:
        return max(1, int(float(value))) if value else 1
    except ValueError:
        return 1


def classify(exc: Exception) -> UpstreamFailure:
    if isinstance(exc, anthropic.APITimeoutError):
        return UpstreamFailure(
            Outcome.TIMEOUT, 504, "upstream_timeout", "Upstream timeout", "Anthropic did not answer in time."
        )
    if isinstance(exc, anthropic.APIConnectionError):
        return UpstreamFailure(
            Outcome.SERVER_ERROR, 502, "upstream_error", "Upstream error", "Anthropic could not be reached."
        )
    if isinstance(exc, anthropic.RateLimitError):
        return UpstreamFailure(
            Outcome.RATE_LIMITED,
            503,
            "upstream_rate_limited",
            "Upstream rate limited",
            "Anthropic is rate limiting this environment; retry later.",
            _retry_after(exc),
        )
    if isinstance(exc, anthropic.APIStatusError):
        error_type = getattr(exc, "type", None)
        if error_type is None and isinstance(exc.body, dict):
            error_type = (exc.body.get("error") or {}).get("type")
        if exc.status_code == 529 or error_type == "overloaded_error":
            return UpstreamFailure(
                Outcome.OVERLOADED,
                503,
                "upstream_overloaded",
                "Upstream overloaded",
                "Anthropic is overloaded; retry later.",
                _retry_after(exc),
            )
        if exc.status_code >= 500 or exc.status_code == 200:
            return UpstreamFailure(
                Outcome.SERVER_ERROR, 502, "upstream_error", "Upstream error", "Anthropic failed to answer."
            )
        refusal = None
        if exc.status_code in (400, 413, 422):
            error = exc.body.get("error") if isinstance(exc.body, dict) else None
            refusal = str(error.get("message", ""))[:500] if isinstance(error, dict) else ""
        return UpstreamFailure(
            Outcome.CLIENT_ERROR,
            502,
            "upstream_error",
            "Upstream error",
            f"Anthropic refused the request ({exc.status_code}); the prompt version or key needs attention.",
            refusal=refusal,
        )
    raise exc
