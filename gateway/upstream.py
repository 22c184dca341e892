"""The one way to Anthropic: one pooled SDK client per provider key per process, and the mapping of
upstream failures to the API's error codes (DESIGN.md §6)."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import anthropic
import httpx2
from django.conf import settings

from core.errors import UpstreamNotAllowed
from keys.models import ProviderKey
from keys.services import provider_key_secret
from keys.upstreams import upstream_url_allowed
from usage.choices import Outcome

logger = logging.getLogger(__name__)

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


@dataclass(frozen=True)
class UpstreamFailure:
    """How an upstream failure is recorded in the ledger and answered to the caller."""

    outcome: str
    status: int
    code: str
    title: str
    detail: str
    retry_after: int | None = None


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
        return UpstreamFailure(
            Outcome.CLIENT_ERROR,
            502,
            "upstream_error",
            "Upstream error",
            f"Anthropic refused the request ({exc.status_code}); the prompt version or key needs attention.",
        )
    raise exc
