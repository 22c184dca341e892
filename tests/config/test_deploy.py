"""deploy/: the web server's configuration loads and serves Tollgate as production runs it — the same file
the benchmarks start it from (bench/run_endpoint.py `server_command`) — with the client's address read
as config.middleware and core.context read it; and the units and the nginx site read as `make smoke`
(deploy/smoke.py) reads them, so that an edit that breaks the smoke fails here first."""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import httpx2
import pytest

from bench.run_endpoint import deploy_settings
from deploy import smoke
from tests.conftest import ROOT, web_server


def test_the_unit_runs_gunicorn_with_the_settings_of_deploy():
    unit = (ROOT / "deploy" / "systemd" / "tollgate-web@.service").read_text()

    assert (
        "ExecStart=/opt/tollgate/.venv/bin/gunicorn -c deploy/gunicorn.conf.py --bind 127.0.0.1:%i config.wsgi" in unit
    )
    assert deploy_settings() == {
        "bind": "0.0.0.0:8000", "workers": 2, "threads": 32,
        "worker_class": "deploy.gunicorn_worker.DrainingThreadWorker", "loglevel": "warning", "preload_app": True,
        "keepalive": 75,
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


def test_the_smoke_starts_each_unit_from_this_checkout(tmp_path):
    bin_dir = Path("/venv/bin")

    web = smoke.unit_command("tollgate-web@.service", venv_bin=bin_dir, state_dir=tmp_path, instance="8123")
    worker = smoke.unit_command("tollgate-worker.service", venv_bin=bin_dir, state_dir=tmp_path)
    beat = smoke.unit_command("tollgate-beat.service", venv_bin=bin_dir, state_dir=tmp_path)

    assert web == ["/venv/bin/gunicorn", "-c", "deploy/gunicorn.conf.py", "--bind", "127.0.0.1:8123", "config.wsgi"]
    assert worker[:4] == ["/venv/bin/celery", "-A", "config", "worker"]
    assert beat == ["/venv/bin/celery", "-A", "config", "beat", "--loglevel", "INFO", "--schedule",
                    f"{tmp_path}/celerybeat-schedule"]  # fmt: skip


def test_a_unit_the_smoke_cannot_run_fails_it(tmp_path, monkeypatch):
    units = tmp_path / "systemd"
    units.mkdir()
    (units / "odd.service").write_text(
        "[Service]\nWorkingDirectory=/opt/tollgate\nExecStart=/usr/bin/env %h/gunicorn config.wsgi\n"
    )
    monkeypatch.setattr(smoke, "UNITS", units)

    with pytest.raises(smoke.DeployDrift, match="%h"):
        smoke.unit_command("odd.service", venv_bin=tmp_path, state_dir=tmp_path)


def substituted_site(tmp_path: Path) -> str:
    return smoke.nginx_site(
        nodes=[18001, 18002], https_port=18443, http_port=18080, certificate=tmp_path / "c.pem", key=tmp_path / "k.pem"
    )


def test_the_smoke_substitutes_only_ports_and_paths_in_the_nginx_site(tmp_path):
    site = substituted_site(tmp_path)

    assert "server 127.0.0.1:18001;\n    server 127.0.0.1:18002;" in site
    assert "listen 127.0.0.1:18443 ssl http2;" in site
    assert "listen 127.0.0.1:18080;" in site
    assert f"ssl_certificate     {tmp_path}/c.pem;" in site
    assert f"ssl_certificate_key {tmp_path}/k.pem;" in site
    for kept in ("ssl_protocols TLSv1.3;", "proxy_set_header X-Forwarded-For $remote_addr;",
                 "proxy_next_upstream error timeout;", "proxy_set_header X-Forwarded-Proto https;"):  # fmt: skip
        assert kept in site
    assert "/etc/tollgate" not in site
    assert "[::]" not in site


def test_a_site_edit_the_substitution_no_longer_fits_fails_the_smoke(tmp_path, monkeypatch):
    edited = tmp_path / "tollgate.conf"
    edited.write_text(smoke.NGINX_SITE.read_text().replace("listen 443 ssl http2;", "listen 8443 ssl;"))
    monkeypatch.setattr(smoke, "NGINX_SITE", edited)

    with pytest.raises(smoke.DeployDrift, match="listen 443"):
        substituted_site(tmp_path)


@pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed (CI installs Debian's)")
def test_nginx_accepts_the_substituted_site(tmp_path):
    cert, key = smoke.certificate(tmp_path)
    site = tmp_path / "tollgate.conf"
    site.write_text(
        smoke.nginx_site(nodes=[18001, 18002], https_port=18443, http_port=18080, certificate=cert, key=key)
    )
    (tmp_path / "nginx.conf").write_text(smoke.nginx_main(tmp_path, site))
    tmp_path.chmod(0o755)

    result = subprocess.run(
        ["nginx", "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")], capture_output=True, text=True
    )

    assert result.returncode == 0, result.stderr
    assert "syntax is ok" in result.stderr
