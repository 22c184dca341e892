"""Each environment's upstream budget for queued work, shared by every worker: a request rate (GCRA: calls
spaced evenly at TOLLGATE_QUEUE_RPM, so a spike never bursts past it) and a concurrency limit (slots
that expire after the job lease, so a killed worker's slot comes back). In Redis when REDIS_URL is set;
in process memory otherwise (the embedded default has one process).
"""

from __future__ import annotations

import threading
import time
import uuid

from django.conf import settings

from core.hotcache import redis_client, redis_key

# KEYS[1]: the rate key. ARGV: interval (ms). Returns 0 (admitted) or the milliseconds to wait.
_RATE = """
local now_s = redis.call('TIME')
local now = now_s[1] * 1000 + math.floor(now_s[2] / 1000)
local interval = tonumber(ARGV[1])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
if tat > now then return tat - now end
redis.call('SET', KEYS[1], tat + interval, 'PX', interval + 1000)
return 0
"""
# KEYS[1]: the slot set. ARGV: limit, slot id, lease (ms). Returns 1 (slot taken) or 0.
_SLOT = """
local now_s = redis.call('TIME')
local now = now_s[1] * 1000 + math.floor(now_s[2] / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[2])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
return 1
"""
_lock = threading.Lock()
_local_rate: dict[str, float] = {}
_local_slots: dict[str, dict[str, float]] = {}


def _key(kind: str, environment: str) -> str:
    return redis_key(f"queue:{kind}:{environment}")


def _interval_ms() -> int:
    return max(1, round(60_000 / settings.TOLLGATE_QUEUE_RPM)) if settings.TOLLGATE_QUEUE_RPM > 0 else 0


def rate_take(environment: str) -> float:
    """0 when a call may start now (its turn is taken), else the seconds until the next turn."""
    interval = _interval_ms()
    if not interval:
        return 0.0
    client = redis_client()
    if client is not None:
        wait_ms = int(client.eval(_RATE, 1, _key("rate", environment), interval))
        return wait_ms / 1000
    with _lock:
        now = time.monotonic() * 1000
        tat = max(_local_rate.get(environment, 0.0), now)
        if tat > now:
            return (tat - now) / 1000
        _local_rate[environment] = tat + interval
        return 0.0


def slot_take(environment: str) -> str | None:
    """A concurrency slot's id, or None when all TOLLGATE_QUEUE_CONCURRENCY slots are in use."""
    limit, lease_ms = settings.TOLLGATE_QUEUE_CONCURRENCY, settings.TOLLGATE_JOB_LEASE_SECONDS * 1000
    slot = uuid.uuid4().hex
    client = redis_client()
    if client is not None:
        taken = client.eval(_SLOT, 1, _key("slots", environment), limit, slot, lease_ms)
        return slot if int(taken) else None
    with _lock:
        now = time.monotonic() * 1000
        slots = {key: until for key, until in _local_slots.get(environment, {}).items() if until > now}
        if len(slots) >= limit:
            return None
        slots[slot] = now + lease_ms
        _local_slots[environment] = slots
        return slot


def slot_give_back(environment: str, slot: str) -> None:
    client = redis_client()
    if client is not None:
        client.zrem(_key("slots", environment), slot)
        return
    with _lock:
        _local_slots.get(environment, {}).pop(slot, None)


def slots_in_use(environment: str) -> int:
    client = redis_client()
    if client is not None:
        key = _key("slots", environment)
        return int(client.zcount(key, int(time.time() * 1000), "+inf"))
    now = time.monotonic() * 1000
    return sum(1 for until in _local_slots.get(environment, {}).values() if until > now)
