"""Production settings refuse to start without their secrets, and pass `check --deploy` with them."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
CANARY_SECRET_KEY = "canary-secret-key-4f1d9a7c-never-print-me-0123456789abcdefghijklmnop"
CANARY_KEK = "ci:" + base64.b64encode(b"canary-kek-32-bytes-never-print!").decode()
SIGNING_KEY = base64.b64encode(b"\x07" * 32).decode()
PRODUCTION = {
    "DJANGO_DEBUG": "false",
    "DJANGO_SECRET_KEY": CANARY_SECRET_KEY,
    "TOLLGATE_ENCRYPTION_KEYS": CANARY_KEK,
    "TOLLGATE_AUDIT_SIGNING_KEY": SIGNING_KEY,
    "TOLLGATE_PSEUDONYM_KEY": "canary-pseudonym-key-never-print-me-0123456789",
}


def manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "TOLLGATE_"))}
    clean["DJANGO_SETTINGS_MODULE"] = "config.settings.base"
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env={**clean, **env}, capture_output=True, text=True, timeout=60
    )


def test_the_sandbox_is_installed_only_for_development():
    production = manage("sandbox", "--help", **PRODUCTION)
    development = manage("sandbox", "--help", **{**PRODUCTION, "DJANGO_DEBUG": "true"})

    assert production.returncode != 0
    assert "Unknown command: 'sandbox'" in production.stderr
    assert development.returncode == 0, development.stderr


@pytest.mark.parametrize(
    "missing", ["DJANGO_SECRET_KEY", "TOLLGATE_ENCRYPTION_KEYS", "TOLLGATE_AUDIT_SIGNING_KEY", "TOLLGATE_PSEUDONYM_KEY"]
)
def test_production_refuses_to_start_without_each_secret(missing):
    env = {name: value for name, value in PRODUCTION.items() if name != missing}

    result = manage("check", **env)

    assert result.returncode != 0
    assert missing in result.stderr
    assert "Traceback" not in result.stderr
    for value in env.values():
        if value != "false":
            assert value not in result.stderr + result.stdout


def test_secrets_can_be_read_from_files(tmp_path):
    (tmp_path / "secret_key").write_text(CANARY_SECRET_KEY + "\n")
    env = {**PRODUCTION, "DJANGO_SECRET_KEY_FILE": str(tmp_path / "secret_key")}
    del env["DJANGO_SECRET_KEY"]

    result = manage("check", **env)

    assert result.returncode == 0, result.stderr


def test_a_malformed_encryption_key_is_named_but_not_echoed():
    result = manage("check", **{**PRODUCTION, "TOLLGATE_ENCRYPTION_KEYS": "primary:bm90LTMyLWJ5dGVz-canary"})

    assert result.returncode != 0
    assert "TOLLGATE_ENCRYPTION_KEYS entry 'primary'" in result.stderr
    assert "canary" not in result.stderr


def test_check_deploy_is_clean_with_production_variables():
    result = manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


@pytest.mark.parametrize(
    ("name", "value"), [("TOLLGATE_EVALUATION_ENVIRONMENT", "prod"), ("TOLLGATE_EVALUATION_MIN_PASS_RATE", "95")]
)
def test_evaluation_settings_out_of_range_stop_start_up_with_their_name(name, value):
    result = manage("check", **PRODUCTION, **{name: value})

    assert result.returncode != 0
    assert name in result.stderr


def test_a_broker_visibility_timeout_within_the_job_lease_is_refused():
    """A job still running under its lease would be delivered to a second worker."""
    refused = manage("check", **PRODUCTION, CELERY_BROKER_VISIBILITY_TIMEOUT="300", TOLLGATE_JOB_LEASE_SECONDS="300")
    accepted = manage("check", **PRODUCTION, CELERY_BROKER_VISIBILITY_TIMEOUT="301", TOLLGATE_JOB_LEASE_SECONDS="300")

    assert refused.returncode != 0
    assert "CELERY_BROKER_VISIBILITY_TIMEOUT (300 s) must exceed TOLLGATE_JOB_LEASE_SECONDS (300 s)" in refused.stderr
    assert accepted.returncode == 0, accepted.stderr


def test_the_broker_visibility_timeout_reaches_celery():
    from config.celery_app import app

    assert app.conf.broker_transport_options["visibility_timeout"] == 3600
