"""deploy/: the web server's configuration loads and serves Tollgate as production runs it — the same file
the benchmarks start it from (bench/run_endpoint.py `server_command`) — with the client's address read
as config.middleware and core.context read it."""

from __future__ import annotations

import httpx2

from bench.run_endpoint import deploy_settings
from tests.conftest import ROOT, web_server


def test_the_unit_runs_gunicorn_with_the_settings_of_deploy():
    unit = (ROOT / "deploy" / "systemd" / "tollgate-web@.service").read_text()

    assert (
        "ExecStart=/opt/tollgate/.venv/bin/gunicorn -c deploy/gunicorn.conf.py --bind 127.0.0.1:%i config.wsgi" in unit
    )
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
