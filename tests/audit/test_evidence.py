"""Evidence packages: each type's rows match the database, every change to the package is caught offline,
auditors download but change nothing, and no secret reaches a package."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import UTC, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.contrib.auth.models import User
from django.core.management import call_command
from django.utils import timezone

from audit.chain import public_key_pem
from audit.evidence import Period, evidence_export, evidence_types, utc_text
from audit.evidence_verify import verify_package
from audit.models import AuditEvent
from evaluations.models import EvaluationRun
from keys import services as key_services
from keys.models import ProviderKey
from prompts.models import Prompt, PromptVersion
from usage.models import BudgetAlert, UsageRecord
from usage.services import budget_alert_acknowledge
from usage.settlement import call_settle

pytestmark = pytest.mark.django_db

CANARY = "sk-ant-api03-CANARY-EVIDENCE-0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c"
TODAY = Period(timezone.now().date(), timezone.now().date())


@pytest.fixture
def world(custodian, approver):
    call_command("seed_demo", "--force", stdout=io.StringIO())
    seeded = ProviderKey.objects.get(environment="staging", status="active")
    key = key_services.provider_key_rotate(actor=custodian, key=seeded, new_secret=CANARY, reason="canary")
    key_services.provider_key_update(
        actor=custodian, key=key, reason="more room", label="canary", monthly_cap_usd=Decimal(80)
    )
    for n in range(3):
        call_settle(record={
            "request_id": f"r{n}", "environment": "production", "endpoint": "run",
            "requested_model": "claude-haiku-4-5", "model": "claude-haiku-4-5", "outcome": "ok",
            "input_tokens": 10 * n, "cost_usd": Decimal("0.001"),
        })  # fmt: skip
    alert = BudgetAlert.objects.create(
        scope="provider_key", scope_id=key.pk, label="canary", period="month",
        period_start=timezone.now().date().replace(day=1), threshold_percent=80,
        spent_usd=Decimal(41), limit_usd=Decimal(50),
    )  # fmt: skip
    budget_alert_acknowledge(actor=approver, alert=alert, note="expected: load test")


def export(type_name: str, period: Period = TODAY) -> tuple[bytes, dict]:
    out = io.BytesIO()
    manifest = evidence_export(type_name=type_name, period=period, out=out, actor_repr="test")
    return out.getvalue(), manifest


def in_database(type_name: str) -> int:
    today = {"occurred_at__date": TODAY.first_day}
    return {
        "change_management": AuditEvent.objects.filter(action__startswith="release.", **today).count(),
        "access_review": User.objects.count(),
        "key_inventory": ProviderKey.objects.count(),
        "usage_ledger": UsageRecord.objects.filter(created_at__date=TODAY.first_day).count(),
        "audit_log": AuditEvent.objects.filter(**today).count(),
        "data_flow": Prompt.objects.count(),
        "alerts": BudgetAlert.objects.count(),
    }[type_name]


def write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "package.zip"
    path.write_bytes(data)
    return path


def rewritten(data: bytes, name: str, change) -> bytes:
    """The package with one member's bytes changed (the others copied as they are)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w") as target:
        for item in source.infolist():
            content = source.read(item.filename)
            target.writestr(item.filename, change(content) if item.filename == name else content)
    return out.getvalue()


def test_every_type_is_registered():
    assert set(evidence_types()) == {
        "change_management", "access_review", "key_inventory", "usage_ledger", "audit_log", "data_flow", "alerts",
    }  # fmt: skip


@pytest.mark.parametrize("type_name", sorted(evidence_types()))
def test_each_export_verifies_and_its_row_counts_equal_the_database(world, tmp_path, type_name):
    data, manifest = export(type_name)

    problems, read_back = verify_package(write(tmp_path, data))

    assert problems == []
    assert read_back == manifest
    expected = in_database(type_name)
    assert expected > 0
    assert [entry["rows"] for entry in manifest["files"]] == [expected, expected]
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert sorted(archive.namelist()) == sorted(
            [f"{type_name}.csv", f"{type_name}.jsonl", "manifest.json", "manifest.sig", "public_key.pem", "README.txt"]
        )
        first = json.loads(archive.read(f"{type_name}.jsonl").splitlines()[0])
        assert list(first) == list(evidence_types()[type_name].columns)
        assert CANARY not in archive.read(f"{type_name}.csv").decode()
        assert CANARY not in archive.read(f"{type_name}.jsonl").decode()
    assert manifest["audit_chain_head"]["sequence"] == AuditEvent.objects.order_by("-sequence").first().sequence


def test_change_management_rows_carry_the_four_eyes_and_the_audit_event(world):
    data, _ = export("change_management")

    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        rows = [json.loads(line) for line in archive.read("change_management.jsonl").splitlines()]
    row = rows[0]
    event = AuditEvent.objects.get(sequence=row["audit_sequence"])
    assert event.action == "release.create"
    assert row["audit_hash"] == event.hash
    assert row["change_id"] == f"CHG-{event.sequence}"
    assert row["author"] != row["approver"]
    assert row["author_is_not_approver"] is True
    assert len(row["content_hash_after"]) == 64
    assert (row["evaluation_before_approval"], row["evaluated_at"]) == ("", None)  # the demo data has none


def test_change_management_rows_show_the_evaluation_the_approver_saw(world):
    version = PromptVersion.objects.get(prompt__slug="support-summary", number=1)
    finished = version.reviewed_at - timedelta(minutes=5)
    EvaluationRun.objects.create(version=version, content_hash=version.content_hash, trigger="manual",
                                 status="passed", environment="development", cases_total=2, cases_passed=2,
                                 pass_rate=1.0, finished_at=finished)  # fmt: skip
    EvaluationRun.objects.create(version=version, content_hash=version.content_hash, trigger="scheduled",
                                 status="failed", environment="development", cases_total=2, cases_passed=1,
                                 pass_rate=0.5, finished_at=timezone.now())  # after approval: not shown  # fmt: skip
    data, _ = export("change_management")

    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        rows = [json.loads(line) for line in archive.read("change_management.jsonl").splitlines()]
    row = next(row for row in rows if row["object"] == "support-summary")
    assert row["evaluation_before_approval"] == "passed 2 of 2"
    assert row["evaluated_at"] == finished.astimezone(UTC).isoformat(timespec="microseconds")


def test_key_inventory_shows_cap_changes_and_never_the_secret(world):
    data, _ = export("key_inventory")

    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        rows = {row["key"]: row for row in map(json.loads, archive.read("key_inventory.jsonl").splitlines())}
    canary = rows["canary"]
    assert canary["last_four"] == CANARY[-4:]
    assert "monthly_cap_usd" in canary["cap_changes_in_period"]
    assert CANARY not in json.dumps(rows)


@pytest.mark.parametrize(
    ("member", "change", "expected"),
    [
        ("usage_ledger.csv", lambda b: b.replace(b"0.001", b"0.002", 1), "usage_ledger.csv: SHA-256 is"),
        ("usage_ledger.jsonl", lambda b: b + b'{"id": 99}\n', "usage_ledger.jsonl: SHA-256 is"),
        ("manifest.json", lambda b: b.replace(b'"rows":3', b'"rows":4', 1), "manifest.sig: the signature"),
        ("manifest.sig", lambda b: b[:-4] + b"AAA=", "manifest.sig: the signature"),
    ],
)
def test_a_changed_byte_anywhere_fails_verification_and_says_where(world, tmp_path, member, change, expected):
    data, _ = export("usage_ledger")

    problems, _ = verify_package(write(tmp_path, rewritten(data, member, change)))

    assert any(problem.startswith(expected) for problem in problems), problems


def test_a_package_signed_by_another_key_is_refused_when_the_key_is_pinned(world, tmp_path, settings):
    ours = public_key_pem()
    settings.TOLLGATE_AUDIT_SIGNING_KEY = Ed25519PrivateKey.generate()
    data, _ = export("alerts")

    problems, _ = verify_package(write(tmp_path, data), expected_public_key=ours)

    assert "public_key.pem: not the expected public key" in problems
    assert "manifest.sig: the signature of manifest.json does not verify" in problems


def test_the_commands_export_and_verify_from_the_shell(world, tmp_path):
    path = tmp_path / "ledger.zip"
    today = TODAY.first_day.isoformat()
    out = io.StringIO()
    call_command("export_evidence", "--type", "usage_ledger", "--from", today, "--to", today, "--out", str(path),
                 stdout=out)  # fmt: skip
    pem = tmp_path / "tollgate.pem"
    pem.write_bytes(public_key_pem())
    verified = io.StringIO()
    call_command("verify_export", str(path), "--public-key", str(pem), stdout=verified)

    assert "usage_ledger.csv 3 rows" in out.getvalue()
    assert "OK: usage_ledger" in verified.getvalue()
    event = AuditEvent.objects.filter(action="evidence.export").get()
    assert event.changes == {"type": "usage_ledger", "from": today, "to": today}
    path.write_bytes(rewritten(path.read_bytes(), "usage_ledger.csv", lambda b: b + b"x"))
    with pytest.raises(SystemExit) as failed:
        call_command("verify_export", str(path), "--public-key", str(pem), stderr=io.StringIO())
    assert failed.value.code == 1


def test_an_auditor_downloads_from_the_admin_and_can_change_nothing(world, client, auditor, tmp_path):
    client.force_login(auditor)
    today = TODAY.first_day.isoformat()

    page = client.get("/admin/audit/auditevent/evidence/")
    response = client.post(
        "/admin/audit/auditevent/evidence/", {"type": "access_review", "first_day": today, "last_day": today}
    )

    assert page.status_code == 200
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    assert response["Content-Disposition"].startswith('attachment; filename="tollgate-access_review-')
    problems, manifest = verify_package(write(tmp_path, b"".join(response.streaming_content)))
    assert problems == []
    assert manifest["generated_by"] == auditor.username
    key = ProviderKey.objects.get(label="canary")
    assert client.post(f"/admin/keys/providerkey/{key.pk}/change/", {"label": "x"}).status_code == 403
    assert client.post(f"/admin/audit/auditevent/{AuditEvent.objects.first().pk}/delete/").status_code == 403
    assert client.post("/admin/prompts/prompt/add/", {"slug": "x"}).status_code == 403


def test_people_without_the_auditor_role_get_no_evidence_page(world, client, outsider, custodian):
    for user in (outsider, custodian):
        client.force_login(user)
        assert client.get("/admin/audit/auditevent/evidence/").status_code == 403


def test_ledger_times_are_written_alike_on_every_database(world):
    data, _ = export("usage_ledger")

    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        first = json.loads(archive.read("usage_ledger.jsonl").splitlines()[0])
    record = UsageRecord.objects.get(pk=first["id"])
    assert first["created_at"] == utc_text(record.created_at)
    assert first["created_at"].endswith("+00:00")
    assert len(first["created_at"]) == len("2026-11-27T12:00:00.000000+00:00")
