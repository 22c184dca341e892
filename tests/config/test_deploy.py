"""deploy/: the web server's configuration loads and serves Tollgate as production runs it — the same file
the benchmarks start it from (bench/run_endpoint.py `server_command`) — with the client's address read
as config.middleware and core.context read it."""

from __future__ import annotations

import base64
import os
import secrets
import subprocess
import sys

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


def _env_example() -> dict[str, str]:
    lines = (ROOT / "deploy" / "tollgate.env.example").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def _filled_in(values: dict[str, str]) -> dict[str, str]:
    """The example with its CHANGE-ME secrets generated as docs/configuration.md#production-secrets says."""
    generated = {
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(64),
        "TOLLGATE_ENCRYPTION_KEYS": "k1:" + base64.b64encode(os.urandom(32)).decode(),
        "TOLLGATE_AUDIT_SIGNING_KEY": base64.b64encode(os.urandom(32)).decode(),
        "TOLLGATE_PSEUDONYM_KEY": secrets.token_urlsafe(32),
        "TOLLGATE_METRICS_TOKEN": secrets.token_urlsafe(32),
    }
    return {name: generated.get(name, value.replace("CHANGE-ME", "s3cret")) for name, value in values.items()}


def _check_deploy(values: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root"), **values}
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_every_setting_of_the_production_env_file_is_documented():
    documented = (ROOT / "docs" / "configuration.md").read_text()

    assert [name for name in _env_example() if f"`{name}`" not in documented] == []
    assert _env_example()["DJANGO_DEBUG"] == "false"


def test_the_production_env_file_with_its_secrets_filled_in_passes_the_deploy_checks():
    result = _check_deploy(_filled_in(_env_example()))

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_the_production_env_file_as_shipped_is_refused_naming_a_setting():
    result = _check_deploy(_env_example())

    assert result.returncode != 0
    assert "TOLLGATE_" in result.stderr or "DJANGO_SECRET_KEY" in result.stderr
    assert "CHANGE-ME" not in result.stderr  # a value is never echoed
