"""Per-client rate limits: fixed one-minute windows counted in Redis (in the cache without it).

The views that count toward a client's limit name `ClientRateLimit` among their throttles. Authentication
sees that and counts the request in the same Redis round trip that reads the hot cache's generation
(keys.services.api_token_authenticate); the throttle then only compares. A request whose token was not in
the cache yet is counted by the throttle itself.
"""

from __future__ import annotations

import time
from typing import Any

from django.core.cache import cache
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from core import hotcache
from core.errors import RateLimited
from keys.models import ApiClient

WINDOW_SECONDS = 60


def rate_limit_counter(client_uid: object, now: float | None = None) -> str:
    """The counter of a client's current window (or of another name's: `playground:<user id>`)."""
    return f"ratelimit:{client_uid}:{int((time.time() if now is None else now) // WINDOW_SECONDS)}"


def rate_limit_check(client: ApiClient) -> None:
    """Count this request toward the client's window (unless authentication did); raises RateLimited with
    the seconds left in the window."""
    now = time.time()
    count = hotcache.counted(f"ratelimit:{client.uid}:")
    if count is None:
        count = window_hit(rate_limit_counter(client.uid, now))
    if count > client.rate_limit_per_minute:
        raise RateLimited(retry_after=window_seconds_left(now))


def window_hit(counter: str) -> int:
    """Count one hit of a fixed window's `counter` and return its count: in Redis (in the round trip that
    observes the hot cache's generation), else in the Django cache (one process's memory)."""
    count = hotcache.observe(counter, counter_seconds=2 * WINDOW_SECONDS)
    if count is None:
        cache.add(counter, 0, timeout=2 * WINDOW_SECONDS)
        try:
            count = cache.incr(counter)
        except ValueError:  # expired between add and incr
            cache.add(counter, 1, timeout=2 * WINDOW_SECONDS)
            count = 1
    return count


def window_seconds_left(now: float | None = None) -> int:
    """The seconds left in the current one-minute window (at least 1): a refusal's Retry-After."""
    now = time.time() if now is None else now
    return max(1, int(WINDOW_SECONDS - now % WINDOW_SECONDS))


class ClientRateLimit(BaseThrottle):
    """The API client's requests a minute (ApiClient.rate_limit_per_minute), on POST."""

    def allow_request(self, request: Request, view: Any) -> bool:
        if counts_toward_rate_limit(request, view) and isinstance(request.user, ApiClient):
            rate_limit_check(request.user)
        return True


def counts_toward_rate_limit(request: Request, view: Any) -> bool:
    return request.method == "POST" and ClientRateLimit in getattr(view, "throttle_classes", ())
