"""Per-process caches of the rows every run reads and that rarely change: an API token and its client, the
version a release runs, an environment's active provider key (docs/contract.md §12).

Each entry is tagged with a **generation**: a number in Redis that every governed change of those rows
increments when its transaction commits (`generation_bump`). A request observes the generation once, in
the same round trip as its rate limit (`observe`), and uses an entry only when the entry's tag equals
what it observed; an entry filled from the database is tagged with the generation observed *before* the
read. So a change committed before a request starts is seen by that request, in every process. Entries
also expire after TOLLGATE_HOT_CACHE_SECONDS: a row changed behind the application's back (raw SQL, which
bumps nothing) is seen within that time. Without Redis nothing is cached: another process (a `manage.py`
command) could change a row, and no generation would tell this one.

Entries are shared by the threads of a process: callers get a copy of each cached model instance (and of
the related instances it carries), never the stored one.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Hashable
from contextvars import ContextVar
from dataclasses import dataclass
from functools import cache
from typing import Any, Generic, TypeVar

import redis
from django.conf import settings
from django.db import models, transaction

from core.context import current

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

# A missing generation (a new or flushed Redis) starts from the server's clock in microseconds, never from
# a number an entry could already carry. A server restarted from an older snapshot (or a replica promoted
# before it had every bump) hands out numbers again that entries already carry, for rows changed since:
# so what a request observes is the number with the server's run id, which every start draws anew.
# KEYS[1]: the generation; KEYS[2], when given: a counter, counted and kept ARGV[1] seconds from its first
# hit. Returns {generation@run id, count}.
_START = "local t = redis.call('TIME') return t[1] .. string.sub('000000' .. t[2], -6)"
_OBSERVE = f"""
local function start() {_START} end
local generation = redis.call('GET', KEYS[1])
if not generation then
  redis.call('SET', KEYS[1], start(), 'NX')
  generation = redis.call('GET', KEYS[1])
end
local count = 0
if KEYS[2] then
  count = redis.call('INCR', KEYS[2])
  if count == 1 then redis.call('EXPIRE', KEYS[2], ARGV[1]) end
end
local server = string.match(redis.call('INFO', 'server'), 'run_id:(%x+)')
return {{generation .. '@' .. server, count}}
"""
_BUMP = f"""
local function start() {_START} end
if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('INCR', KEYS[1]) end
redis.call('SET', KEYS[1], start())
return 0
"""


@cache
def redis_client() -> redis.Redis | None:
    """The process's Redis connection pool, or None without REDIS_URL (the embedded default)."""
    return redis.Redis.from_url(settings.REDIS_URL) if settings.REDIS_URL else None


def redis_key(name: str) -> str:
    """A raw Redis key, under the cache's prefix (so tests and a development server sharing Redis stay apart)."""
    return f"{settings.CACHES['default'].get('KEY_PREFIX') or 'tollgate'}:{name}"


@cache
def _scripts(client: redis.Redis) -> tuple[Any, Any]:
    return client.register_script(_OBSERVE), client.register_script(_BUMP)


@dataclass(frozen=True)
class _Observation:
    scope: object  # the request it was made for
    generation: bytes
    counter: str
    count: int


_observed: ContextVar[_Observation | None] = ContextVar("tollgate_hot_cache_generation", default=None)


def _scope() -> object | None:
    """The HTTP request being answered: one observation serves all its look-ups. Tasks and commands have
    none, so each of their look-ups observes the generation afresh."""
    context = current()
    return context if context is not None and context.request is not None else None


def observe(counter: str = "", *, counter_seconds: int = 120) -> int | None:
    """Read the generation for the current request and, in the same round trip, count one hit of `counter`
    (a key kept `counter_seconds` from its first hit). Returns the count; None without Redis."""
    client = redis_client()
    if client is None:
        return None
    keys = [redis_key("hotcache:generation"), *([redis_key(counter)] if counter else [])]
    generation, count = _scripts(client)[0](keys=keys, args=[counter_seconds])
    scope = _scope()
    if scope is not None:
        _observed.set(_Observation(scope, generation, counter, int(count)))
    return int(count) if counter else None


def counted(prefix: str) -> int | None:
    """The count of the counter starting with `prefix` that this request's observation counted, if any."""
    observation = _observed.get()
    if observation is None or observation.scope is not _scope() or not observation.counter.startswith(prefix):
        return None
    return observation.count


def _generation() -> bytes:
    observation = _observed.get()
    scope = _scope()
    if observation is None or scope is None or observation.scope is not scope:
        client = redis_client()
        assert client is not None  # only called when caching is on
        generation, _ = _scripts(client)[0](keys=[redis_key("hotcache:generation")], args=[0])
        if scope is not None:
            _observed.set(_Observation(scope, generation, "", 0))
        return bytes(generation)
    return observation.generation


def enabled() -> bool:
    return redis_client() is not None and settings.TOLLGATE_HOT_CACHE_SECONDS > 0


def shared_copy(value: V) -> V:
    """What a caller may hold: a copy of a model instance and of the related instances it carries (one
    level), so that nothing a caller sets reaches the entry other threads read."""
    if not isinstance(value, models.Model):
        return value
    clone = copy.copy(value)  # Model.__reduce__ copies the state and its cache of related rows
    for name, related in list(clone._state.fields_cache.items()):
        if isinstance(related, models.Model):
            clone._state.fields_cache[name] = copy.copy(related)
    return clone


@dataclass(frozen=True)
class _Entry(Generic[V]):
    generation: bytes
    expires: float
    value: V


_caches: list[HotCache[Any, Any]] = []
_lock = threading.Lock()


class HotCache(Generic[K, V]):
    """One kind of entry (tokens, releases, keys), keyed by what its look-up is keyed by."""

    def __init__(self) -> None:
        self._entries: dict[K, _Entry[V]] = {}
        with _lock:
            _caches.append(self)

    def get(self, key: K, fill: Callable[[], V]) -> V:
        """The entry for `key` if its generation is this request's and it has not expired, else `fill()`
        (a database read), kept for the requests that follow."""
        if not enabled():
            return fill()
        generation = _generation()  # before the read: a change committed meanwhile makes the entry stale
        now = time.monotonic()
        entry = self._entries.get(key)
        if entry is None or entry.generation != generation or entry.expires <= now:
            entry = _Entry(generation, now + settings.TOLLGATE_HOT_CACHE_SECONDS, fill())
            self._entries[key] = entry
        return shared_copy(entry.value)

    def peek(self, key: K) -> V | None:
        """The stored entry for `key` whatever its generation or age (for what never changes, such as a
        token's client), or None. Not a copy: the caller only reads it."""
        entry = self._entries.get(key)
        return entry.value if entry is not None else None

    def clear(self) -> None:
        self._entries = {}


def clear() -> None:
    """Drop this process's entries."""
    with _lock:
        for hot_cache in _caches:
            hot_cache.clear()


def _bump_shared() -> None:
    clear()
    client = redis_client()
    if client is not None:
        _scripts(client)[1](keys=[redis_key("hotcache:generation")])


def rows_changed(**kwargs: Any) -> None:
    """post_save / post_delete of a cached model: a safety net for saves that skip the services (the shell,
    a migration); the services bump through save_with_history."""
    generation_bump()


def generation_bump() -> None:
    """A cached row changes: this process's entries go now, and when the transaction commits the
    generation is incremented, so every process's next request reads the rows again. A failure to reach
    Redis after the commit is logged (the change stands; entries then live out their TTL)."""
    clear()
    if redis_client() is not None:
        transaction.on_commit(_bump_shared, robust=True)
