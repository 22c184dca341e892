"""Locks held over work that commits as it goes, so cannot sit inside one transaction's row lock."""

from __future__ import annotations

import contextlib
import zlib
from collections.abc import Iterator

from django.db import connection


@contextlib.contextmanager
def held_alone(name: str, key: int) -> Iterator[bool]:
    """Whether this process alone holds the lock (`name`, `key`) for the block: a PostgreSQL session
    advisory lock, taken without waiting and released when the block ends (or its connection closes).
    On SQLite — the embedded default, one process running tasks in place — always True."""
    if connection.vendor != "postgresql":
        yield True
        return
    space, key = zlib.crc32(name.encode()) & 0x7FFFFFFF, key % 2**31
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [space, key])
        held = bool(cursor.fetchone()[0])
    try:
        yield held
    finally:
        if held:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [space, key])
