"""Streamed response bodies that always get to clean up.

A WSGI server closes a response's body when it is done with it — also when the caller went away before the
first byte was asked for. A generator that was never started ignores `close()`: its `finally` never runs. A
body that holds a spend reservation or an idempotency key must still give them back, so it is wrapped in
`ClosingStream`, whose `close()` always reaches the cleanup.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator


class ClosingStream(Iterator[bytes]):
    """Passes `events` on; when closed, closes them, then calls `on_close(started)` once — `started` tells
    whether anything was asked of the events (a started generator has cleaned up after itself on close)."""

    def __init__(self, events: Iterator[bytes], on_close: Callable[[bool], None]) -> None:
        self._events, self._on_close = events, on_close
        self._started = self._closed = False

    def __next__(self) -> bytes:
        self._started = True
        return next(self._events)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            close = getattr(self._events, "close", None)
            if close is not None:
                close()
        finally:
            self._on_close(self._started)
