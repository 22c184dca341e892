"""deploy/: the web server's configuration loads and serves Tollgate as production runs it — the same file
the benchmarks start it from (bench/run_endpoint.py `server_command`) — with the client's address read
as config.middleware and core.context read it, and a streamed run's events sent as they come."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx2
import pytest
from django.conf import settings

from bench.run_endpoint import deploy_settings
from keys.models import ProviderKey
from tests.conftest import ROOT, web_server

RUN = "/api/v1/prompts/support-summary/run"
VARIABLES = {"ticket": "The printer is on fire.", "customer_email": "a@b.co"}


def test_the_unit_runs_gunicorn_with_the_settings_of_deploy():
    unit = (ROOT / "deploy" / "tollgate-web.service").read_text()

    assert "ExecStart=/opt/tollgate/.venv/bin/gunicorn -c deploy/gunicorn.conf.py config.wsgi" in unit
    assert deploy_settings() == {
        "bind": "0.0.0.0:8000", "workers": 2, "threads": 32, "worker_class": "gthread", "loglevel": "warning",
    }  # fmt: skip


def test_the_deploy_server_answers_and_reads_the_forwarded_address():
    """Behind one trusted proxy the client is the last X-Forwarded-For entry, not REMOTE_ADDR (loopback
    here): /metrics, answered to loopback clients only, is refused to a forwarded outside address."""
    with web_server({"TOLLGATE_TRUSTED_PROXIES": "1", "TOLLGATE_METRICS_TOKEN": ""}) as url:
        alive = httpx2.get(f"{url}/healthz")
        outside = httpx2.get(f"{url}/metrics", headers={"X-Forwarded-For": "127.0.0.1, 203.0.113.5"})

    assert (alive.status_code, alive.json()) == (200, {"status": "ok"})
    assert alive.headers["X-Request-ID"]
    assert outside.status_code == 404


class HeldUpstream:
    """Relays the sandbox's answers, but holds a stream after its first text delta until `release` is set,
    so a test can see whether that delta reached the caller before the upstream finished."""

    def __init__(self, sandbox_url: str) -> None:
        self.release = threading.Event()
        self.finished = threading.Event()
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                headers = {name: value for name, value in self.headers.items() if name.lower() != "host"}
                with httpx2.stream("POST", sandbox_url + self.path, content=body, headers=headers) as answer:
                    self.send_response(answer.status_code)
                    for name, value in answer.headers.items():
                        if name.lower() not in {"content-length", "transfer-encoding", "connection"}:
                            self.send_header(name, value)
                    self.send_header("Connection", "close")
                    self.end_headers()
                    held = False
                    for line in answer.iter_lines():
                        self.wfile.write(line.encode() + b"\n")
                        self.wfile.flush()
                        if line.startswith("data:") and '"text_delta"' in line and not held:
                            held = True
                            self.wfile.write(b"\n")
                            self.wfile.flush()
                            upstream.release.wait(10)
                upstream.finished.set()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.django_db(transaction=True)
def test_the_deploy_server_streams_each_delta_as_it_comes_and_answers_loopback(api_world, sandbox):
    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        pytest.skip("a server process cannot share an in-memory SQLite test database")
    upstream = HeldUpstream(sandbox.url)
    ProviderKey.objects.update(base_url=upstream.url)
    headers = {"Authorization": f"Bearer {api_world['token']}"}
    events: list[str] = []
    try:
        with web_server({"TOLLGATE_TRUSTED_PROXIES": "1", "TOLLGATE_METRICS_TOKEN": ""}) as url:
            with httpx2.stream("POST", url + RUN, json={"variables": VARIABLES, "stream": True},
                               headers=headers, timeout=30) as response:  # fmt: skip
                for line in response.iter_lines():
                    if line.startswith("event: "):
                        events.append(line.removeprefix("event: "))
                        if events.count("delta") == 1 and events[-1] == "delta":
                            # Sent on while the upstream still holds the rest of its stream.
                            assert not upstream.finished.is_set()
                            upstream.release.set()
            forwarded = httpx2.get(f"{url}/metrics", headers={"X-Forwarded-For": "203.0.113.5, 127.0.0.1"})
            direct = httpx2.get(f"{url}/metrics")
    finally:
        upstream.close()

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/event-stream"
    assert "delta" in events
    assert events[-1] == "run.completed"
    assert (forwarded.status_code, direct.status_code) == (200, 200)
