"""Checking an evidence package offline: no database, no Django settings (also `python -m
audit.evidence_verify FILE.zip`). Says exactly what does not match."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import sys
import zipfile
from pathlib import Path
from typing import Any, TextIO

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

FIXED = {"manifest.json", "manifest.sig", "public_key.pem", "README.txt"}


def _digest(archive: zipfile.ZipFile, name: str) -> str:
    digest = hashlib.sha256()
    with archive.open(name) as member:
        while chunk := member.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _rows(archive: zipfile.ZipFile, name: str, header: bool) -> int:
    """Records in the member, read as a stream (CSV records may span lines)."""
    with archive.open(name) as member, io.TextIOWrapper(member, encoding="utf-8", newline="") as text:
        if name.endswith(".csv"):
            return sum(1 for _ in csv.reader(text)) - (1 if header else 0)
        return sum(1 for line in text if line.strip())


def _public_key(pem: bytes) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(pem)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return key


def key_fingerprint(pem: bytes) -> str:
    raw = _public_key(pem).public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def verify_package(path: Path, *, expected_public_key: bytes | None = None) -> tuple[list[str], dict[str, Any]]:
    """(problems, manifest). No problems: every file is as the signed manifest says."""
    problems: list[str] = []
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        return [f"not a readable ZIP file: {exc}"], {}
    with archive:
        names = set(archive.namelist())
        missing = sorted({"manifest.json", "manifest.sig", "public_key.pem"} - names)
        if missing:
            return [f"missing {name}" for name in missing], {}
        manifest_bytes = archive.read("manifest.json")
        pem = archive.read("public_key.pem")
        try:
            key = _public_key(expected_public_key or pem)
            key.verify(base64.b64decode(archive.read("manifest.sig")), manifest_bytes)
        except (InvalidSignature, ValueError):
            problems.append("manifest.sig: the signature of manifest.json does not verify")
        if expected_public_key is not None and expected_public_key.strip() != pem.strip():
            problems.append("public_key.pem: not the expected public key")
        try:
            manifest: dict[str, Any] = json.loads(manifest_bytes)
            files = manifest["files"]
        except (ValueError, KeyError, TypeError):
            return [*problems, "manifest.json: not a valid manifest"], {}
        listed = set()
        for entry in files:
            name = entry["name"]
            listed.add(name)
            if name not in names:
                problems.append(f"{name}: listed in the manifest, missing from the package")
                continue
            digest = _digest(archive, name)
            if digest != entry["sha256"]:
                problems.append(f"{name}: SHA-256 is {digest}, the manifest says {entry['sha256']}")
            try:
                rows = _rows(archive, name, bool(entry.get("header")))
            except (UnicodeDecodeError, csv.Error):
                problems.append(f"{name}: not readable as text")
                continue
            if rows != entry["rows"]:
                problems.append(f"{name}: {rows} rows, the manifest says {entry['rows']}")
        for name in sorted(names - listed - FIXED):
            problems.append(f"{name}: in the package but not in the manifest")
    return problems, manifest


def report(path: Path, expected_public_key: bytes | None, out: TextIO, err: TextIO) -> int:
    """Print what does not match (exit status 1), or what was verified (0)."""
    problems, manifest = verify_package(path, expected_public_key=expected_public_key)
    for problem in problems:
        err.write(f"MISMATCH {problem}\n")
    if problems:
        return 1
    for entry in manifest["files"]:
        out.write(f"  {entry['name']}: {entry['rows']} rows, sha256 {entry['sha256'][:16]}… ok\n")
    with zipfile.ZipFile(path) as archive:
        fingerprint = key_fingerprint(expected_public_key or archive.read("public_key.pem"))
    period = manifest["period"]
    out.write(
        f"OK: {manifest['export_type']} {period['from']}..{period['to']} verified; "
        f"signed by the key with SHA-256 fingerprint {fingerprint}\n"
    )
    return 0


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.stderr.write("usage: python -m audit.evidence_verify FILE.zip [PUBLIC_KEY.pem]\n")
        raise SystemExit(2)
    key = Path(sys.argv[2]).read_bytes() if len(sys.argv) == 3 else None
    raise SystemExit(report(Path(sys.argv[1]), key, sys.stdout, sys.stderr))
