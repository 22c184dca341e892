"""Helpers of the tests that run prompts against the sandbox: planted personal data, the sandbox's record
of what reached it, faults, and a webhook receiver."""

from __future__ import annotations

import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx2

EMAIL = "jane.doe@example.com"
PHONE = "+1 415 555 2671"
TICKET = f"My printer is on fire. Call me on {PHONE}."


def sandbox_requests(world) -> list[dict]:
    return httpx2.get(f"{world['sandbox'].url}/_sandbox/requests").json()["requests"]


def inject(world, **fault) -> None:
    httpx2.post(f"{world['sandbox'].url}/_sandbox/faults", json=fault).raise_for_status()


class Receiver:
    """A webhook receiver on 127.0.0.1: answers each POST with the next status in `statuses`; over TLS with
    the certificate of `tls` when given."""

    def __init__(self, statuses: list[int], tls: ssl.SSLContext | None = None) -> None:
        self.statuses = statuses
        self.received: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append((dict(self.headers), body))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                if 300 <= status < 400:  # to a path that would answer 200: following it would "deliver"
                    self.send_header("Location", "/followed")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
            self.url = f"https://127.0.0.1:{self.port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def close_response(response) -> None:
    """Close a streamed response as a WSGI server does when the caller goes away: run its closers (the body's
    among them) — without the end-of-request signal, whose handler would close the test's database
    connection in the middle of its transaction."""
    for closer in list(response._resource_closers):
        closer()
    response.closed = True
