"""The hot cache's rules (core/hotcache.py, docs/contract.md §12), on the real Redis when configured."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time

import pytest
import redis
from django.contrib.auth.models import User
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from core import hotcache

pytestmark = pytest.mark.django_db


def generation() -> int:
    client = hotcache.redis_client()
    assert client is not None
    return int(client.get(hotcache.redis_key("hotcache:generation")) or 0)


def test_without_redis_or_with_a_zero_ttl_every_look_up_reads(settings):
    cache: hotcache.HotCache[str, int] = hotcache.HotCache()
    if hotcache.enabled():
        settings.TOLLGATE_HOT_CACHE_SECONDS = 0
    reads = iter(range(10))

    assert [cache.get("k", lambda: next(reads)) for _ in range(3)] == [0, 1, 2]


def test_an_entry_carries_the_generation_read_before_its_rows():
    """A change committed while the rows were being read makes the entry stale at once: had it been
    tagged with the generation read after the read, the old rows would be served until the TTL."""
    if not hotcache.enabled():
        pytest.skip("nothing is cached without Redis")  # the test above covers that
    cache: hotcache.HotCache[str, str] = hotcache.HotCache()
    client = hotcache.redis_client()
    assert client is not None
    cache.get("k", lambda: "warm")  # the generation exists

    def read_while_another_process_commits() -> str:
        client.incr(hotcache.redis_key("hotcache:generation"))
        return "old rows"

    assert cache.get("k2", read_while_another_process_commits) == "old rows"
    assert cache.get("k2", lambda: "new rows") == "new rows"
    assert cache.get("k2", lambda: "newer rows") == "new rows"  # now it is used


def test_a_bump_clears_at_once_and_increments_the_generation_when_the_transaction_commits(
    django_capture_on_commit_callbacks,
):
    cache: hotcache.HotCache[str, str] = hotcache.HotCache()
    cache.get("k", lambda: "before")
    before = generation() if hotcache.enabled() else 0

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        hotcache.generation_bump()
        assert cache.get("k", lambda: "during") == "during"  # this process's entries went at once
    if hotcache.enabled():
        assert generation() == before  # not yet committed: other processes keep their entries
    for callback in callbacks:
        callback()

    if hotcache.enabled():
        assert generation() == before + 1
        assert cache.get("k", lambda: "after") == "after"


def test_a_missing_generation_starts_from_the_clock_not_from_zero():
    """A flushed or restarted Redis must not hand out a generation an old entry could carry."""
    if not hotcache.enabled():
        pytest.skip("no generation without Redis")
    client = hotcache.redis_client()
    assert client is not None
    client.delete(hotcache.redis_key("hotcache:generation"))

    hotcache.observe()

    assert generation() > 10**15  # microseconds since 1970


def test_callers_get_copies_never_the_shared_entry(settings):
    cache: hotcache.HotCache[str, User] = hotcache.HotCache()
    first = cache.get("u", lambda: User(username="shared"))
    first.username = "changed by one caller"

    again = cache.get("u", lambda: User(username="read again"))

    assert again.username in ("shared", "read again")  # cached (with Redis) or read again: never the change


@pytest.fixture
def own_redis(tmp_path, monkeypatch, settings):
    """A Redis server of this test's own (in `tmp_path`, snapshots there), which the test may restart; the
    hot cache talks to it."""
    if not settings.REDIS_URL or not shutil.which("redis-server"):
        pytest.skip("needs Redis (and its server binary, to restart one)")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp_path), "--save", ""]
    command += ["--appendonly", "no", "--daemonize", "no"]
    client = redis.Redis(port=port, socket_connect_timeout=1)
    processes: list[subprocess.Popen[bytes]] = []

    def start() -> None:
        processes.append(subprocess.Popen(command, stdout=subprocess.DEVNULL))
        client.connection_pool.disconnect()
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)

    def restart() -> None:
        """As a crash and a restart: the server comes back with its last snapshot."""
        processes[-1].kill()
        processes[-1].wait(timeout=10)
        start()

    start()
    monkeypatch.setattr(hotcache, "redis_client", lambda: client)
    try:
        yield client, restart
    finally:
        for process in processes:
            process.kill()
            process.wait(timeout=10)


@given(after_snapshot=st.integers(min_value=1, max_value=4), after_restart=st.integers(min_value=0, max_value=4))
@hypothesis_settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_a_redis_restarted_from_an_older_snapshot_never_validates_an_entry(own_redis, after_snapshot, after_restart):
    """Redis restarted from a snapshot taken before some bumps (or a failover to a lagging replica) hands
    out generations that were already handed out: an entry filled under one of them, before changes the
    restart forgot, must not be taken as fresh, whichever bumps follow the restart."""
    client, restart = own_redis
    hotcache.clear()
    cache: hotcache.HotCache[str, str] = hotcache.HotCache()
    key = hotcache.redis_key("hotcache:generation")
    hotcache.observe()
    client.save()  # the snapshot the restart comes back with
    for step in range(after_snapshot):  # entries filled, then another process's changes the snapshot misses
        cache.get(f"k{step}", lambda: "before the change")
        client.incr(key)
    restart()
    for _ in range(after_restart):  # changes after the restart: the generation walks the same numbers again
        client.incr(key)

    assert {cache.get(f"k{step}", lambda: "after") for step in range(after_snapshot)} == {"after"}
