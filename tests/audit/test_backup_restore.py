"""The backup and restore drill of docs/operations.md, run as written: `pg_dump --format=custom` of a live
database, `pg_restore` into a fresh one, and there `verify_audit_chain` and an evidence package exported
from the restored data that `verify_export` accepts. PostgreSQL only (the embedded default is a file)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import time_machine
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from audit.models import AuditCheckpoint, AuditEvent
from audit.services import audit_checkpoints_write, audit_event_record
from tests.conftest import ROOT

pytestmark = pytest.mark.django_db(transaction=True)


def _url(name: str) -> str:
    db = settings.DATABASES["default"]
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"postgres://{db['USER']}{password}@{db['HOST'] or 'localhost'}{port}/{name}"


def _client_env() -> dict[str, str]:
    db = settings.DATABASES["default"]
    env = {**os.environ, "PGHOST": db["HOST"] or "localhost", "PGUSER": db["USER"]}
    if db.get("PORT"):
        env["PGPORT"] = str(db["PORT"])
    if db.get("PASSWORD"):
        env["PGPASSWORD"] = db["PASSWORD"]
    return env


def _manage(*args: str, database: str, anchors: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": _url(database),
        "TOLLGATE_AUDIT_ANCHOR_DIR": str(anchors),
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.fixture
def restored_name() -> Iterator[str]:
    name = f"{settings.DATABASES['default']['NAME']}_restore"
    yield name
    subprocess.run(["dropdb", "--if-exists", name], env=_client_env(), check=False)


def test_a_restored_dump_verifies_its_audit_chain_and_evidence(tmp_path, settings, restored_name):
    if connection.vendor != "postgresql" or not shutil.which("pg_dump"):
        pytest.skip("the drill dumps and restores PostgreSQL (pg_dump, pg_restore)")
    anchors = tmp_path / "anchors"
    settings.TOLLGATE_AUDIT_ANCHOR_DIR = anchors
    with transaction.atomic(), connection.cursor() as cursor:  # a trail of this test's own (as empty_trail)
        cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute(
            "DELETE FROM audit_auditevent; DELETE FROM audit_auditcheckpoint; DELETE FROM audit_auditchainhead"
        )
    now = timezone.now()
    with time_machine.travel(now - timedelta(hours=3), tick=False):
        for number in range(25):
            audit_event_record(action="drill.change", actor_repr="system", changes={"n": number}, reason="drill")
    written = audit_checkpoints_write()
    assert written, "the hours since the events are checkpointed"
    events, checkpoints = AuditEvent.objects.count(), AuditCheckpoint.objects.count()

    # The procedure of docs/operations.md ("Backup and restore"), step by step.
    dump = tmp_path / "tollgate.dump"
    env = _client_env()
    live = settings.DATABASES["default"]["NAME"]
    subprocess.run(["pg_dump", "--format=custom", f"--file={dump}", live], env=env, check=True)
    subprocess.run(["createdb", restored_name], env=env, check=True)
    subprocess.run(
        ["pg_restore", "--exit-on-error", "--no-owner", f"--dbname={restored_name}", str(dump)], env=env, check=True
    )

    chain = _manage("verify_audit_chain", database=restored_name, anchors=anchors)
    assert chain.returncode == 0, chain.stdout + chain.stderr
    # Every event and checkpoint came back, each checkpoint equal to its anchor kept outside the database.
    assert chain.stdout.startswith(f"OK: {events} events"), chain.stdout
    assert f"{checkpoints} signed checkpoints verified" in chain.stdout

    package, key = tmp_path / "audit-log.zip", tmp_path / "audit.pem"
    day = (now - timedelta(hours=3)).date()
    exported = _manage(
        "export_evidence", "--type", "audit_log", "--from", str(day), "--to", str(now.date()), "--out", str(package),
        database=restored_name, anchors=anchors,
    )  # fmt: skip
    assert exported.returncode == 0, exported.stdout + exported.stderr
    public = _manage("audit_public_key", database=restored_name, anchors=anchors)
    assert public.returncode == 0, public.stderr
    key.write_text(public.stdout)
    verified = _manage("verify_export", str(package), "--public-key", str(key), database=restored_name, anchors=anchors)
    assert verified.returncode == 0, verified.stdout + verified.stderr
