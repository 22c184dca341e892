"""The web nodes' gunicorn worker (deploy/gunicorn.conf.py): gunicorn's threaded worker, except that a
stopping worker stops *listening* at once instead of when its last request is done.

gunicorn's gthread worker, told to stop (SIGTERM: `systemctl stop`, a restart), stops accepting but keeps
its listening sockets open until every request in flight has finished. Meanwhile the kernel still
completes connections to the port: the proxy's request goes into a queue that nobody reads, and is reset
when the worker exits. nginx does not send a POST that was already sent to another node (it might have
been run), so that run fails with 502. Closed at once, the port refuses connections, and nginx sends the
request to the other node (`proxy_next_upstream error`): `make smoke` restarts a node under load and
counts no failed request. Connections the kernel had already queued are taken and served first.
"""

from __future__ import annotations

import contextlib

from gunicorn.workers.gthread import TConn, ThreadWorker  # type: ignore[import-untyped]  # no type information


class DrainingThreadWorker(ThreadWorker):  # type: ignore[misc]
    def set_accept_enabled(self, enabled: bool) -> None:
        super().set_accept_enabled(enabled)
        if enabled or self.alive:
            return  # a full worker pausing, not a stopping one
        for listener in self.sockets:
            with contextlib.suppress(OSError):  # EAGAIN: nothing more queued
                while True:
                    client, address = listener.accept()
                    self.nr_conns += 1
                    client.setblocking(True)
                    self.enqueue_req(TConn(self.cfg, client, address, listener.getsockname()))
            listener.close()
