"""The sandbox's memory: configuration, queued faults, the prompt cache, batches and recorded requests.

One instance per server, used only from the server's event loop, so it needs no locks.
"""

from __future__ import annotations

import secrets
import string
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from sandbox.catalog import MODELS

_ALPHABET = string.ascii_letters + string.digits

FAULT_KINDS = {429, 500, 529, "timeout", "disconnect", "stream_error"}


def new_id(prefix: str) -> str:
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(24))


@dataclass
class Fault:
    """A failure to inject into the next `remaining` requests to /v1/."""

    kind: int | str
    remaining: int
    retry_after_ms: int | None = None
    seconds: float = 30.0  # how long a "timeout" holds the request before giving up


@dataclass
class Config:
    """What a test may change at run time (POST /_sandbox/config); `reset` restores the start values."""

    latency_ms: int = 0
    batch_seconds: float = 1.0
    stream_chunk_chars: int = 16
    cache_min_tokens: dict[str, int] = field(default_factory=dict)
    requests_per_minute: int = 4_000
    tokens_per_minute: int = 2_000_000
    enforced_rpm: int = 0  # POST /_sandbox/ratelimit: beyond this many requests a minute, answer 429

    def min_cache_tokens(self, model: str) -> int:
        return self.cache_min_tokens.get(model, MODELS[model].min_cache_tokens)


@dataclass
class Batch:
    """A Message Batch: its requests are answered when it ends, `batch_seconds` after creation."""

    batch_id: str
    api_key_scope: str
    requests: list[dict[str, Any]]
    created_at: float
    ends_at: float
    cancel_initiated_at: float | None = None
    expired: bool = False
    results: list[dict[str, Any]] | None = None


class SandboxState:
    """All mutable state of one sandbox server."""

    def __init__(self, config: Config | None = None) -> None:
        self.initial_config = config or Config()
        self.reset()

    def reset(self) -> None:
        self.config = Config(**{**self.initial_config.__dict__, "cache_min_tokens": {}})
        self.config.cache_min_tokens.update(self.initial_config.cache_min_tokens)
        self.faults: deque[Fault] = deque()
        # (api key scope, model, prefix digest) -> expiry time
        self.cache: dict[tuple[str, str, str], float] = {}
        self.batches: dict[str, Batch] = {}
        self.requests: deque[dict[str, Any]] = deque(maxlen=1_000)
        self.clock_offset = 0.0
        # api key scope -> (minute, requests, tokens)
        self.rate_windows: dict[str, tuple[int, int, int]] = {}
        # api key scope -> times of the requests admitted in the last 60 s (rate-limit mode)
        self.admitted: dict[str, deque[float]] = {}
        self.rate_limited = 0

    def now(self) -> float:
        """Wall-clock time, shifted by POST /_sandbox/clock so tests can age caches and batches."""
        return time.time() + self.clock_offset

    def take_fault(self) -> Fault | None:
        while self.faults:
            fault = self.faults[0]
            if fault.remaining <= 0:
                self.faults.popleft()
                continue
            fault.remaining -= 1
            if fault.remaining == 0:
                self.faults.popleft()
            return fault
        return None

    def rate_limit_wait(self, scope: str) -> float | None:
        """In rate-limit mode, None when this request is admitted, else the seconds until one would be
        (a sliding 60-second window per API key)."""
        if not self.config.enforced_rpm:
            return None
        now = self.now()
        admitted = self.admitted.setdefault(scope, deque())
        while admitted and admitted[0] <= now - 60:
            admitted.popleft()
        if len(admitted) < self.config.enforced_rpm:
            admitted.append(now)
            return None
        self.rate_limited += 1
        return admitted[0] + 60 - now

    def count_request(self, scope: str, tokens: int) -> tuple[int, int, float]:
        """Count one request against this minute's window: (requests left, tokens left, window end)."""
        now = self.now()
        minute = int(now // 60)
        window_minute, used_requests, used_tokens = self.rate_windows.get(scope, (minute, 0, 0))
        if window_minute != minute:
            used_requests, used_tokens = 0, 0
        used_requests += 1
        used_tokens += tokens
        self.rate_windows[scope] = (minute, used_requests, used_tokens)
        return (
            max(self.config.requests_per_minute - used_requests, 0),
            max(self.config.tokens_per_minute - used_tokens, 0),
            (minute + 1) * 60.0,
        )
