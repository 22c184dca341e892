"""Checking an evidence package offline: no database, no Django settings (also `python -m
audit.evidence_verify FILE.zip --public-key PEM`). Says exactly what does not match.

A package carries the public key that signed it, so its signature alone proves only that the files are
intact: anyone can re-sign a changed package with a key of their own. Verification therefore needs the
key the package is expected to come from (`--public-key PEM`, or `--fingerprint` of it); without one it
refuses (exit 2) unless told `--trust-embedded-key`, and then says loudly what that does not prove.

Exit status: 0 verified, 1 a mismatch or a malformed package (one line each, never a traceback), 2 a
usage error (no expected key, an unreadable key file).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import csv
import hashlib
import io
import json
import re
import sys
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

FIXED = {"manifest.json", "manifest.sig", "public_key.pem", "README.txt"}
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
# What reading a damaged archive member can raise: a bad CRC or header, bad compressed data, an unknown
# compression method or encryption, a member cut short.
_ARCHIVE_ERRORS = (zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError, EOFError, OSError)


class MalformedPackage(Exception):
    """Not a well-formed evidence package; the message is the one-line reason."""


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _read(archive: zipfile.ZipFile, name: str) -> bytes:
    try:
        return archive.read(name)
    except _ARCHIVE_ERRORS as exc:
        raise MalformedPackage(f"{name} cannot be read from the archive ({_one_line(exc)})") from None


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


def _raw_fingerprint(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def key_fingerprint(pem: bytes) -> str:
    """The SHA-256 of the raw 32-byte public key, in hex: what `--fingerprint` expects."""
    return _raw_fingerprint(_public_key(pem))


def _manifest(data: bytes) -> dict[str, Any]:
    """manifest.json, checked for the shape the rest of the verification relies on."""
    try:
        manifest = json.loads(data)
    except ValueError:
        raise MalformedPackage("manifest.json is not JSON") from None
    if not isinstance(manifest, dict):
        raise MalformedPackage("manifest.json is not a JSON object")
    for key, kind in (("export_type", str), ("period", dict), ("files", list)):
        if not isinstance(manifest.get(key), kind):
            raise MalformedPackage(f"manifest.json: {key!r} is missing or not a {kind.__name__}")
    if not all(isinstance(manifest["period"].get(end), str) for end in ("from", "to")):
        raise MalformedPackage("manifest.json: the period has no 'from' and 'to' dates")
    for number, entry in enumerate(manifest["files"], start=1):
        if not (
            isinstance(entry, dict)
            and isinstance(entry.get("name"), str)
            and entry["name"] not in FIXED
            and isinstance(entry.get("sha256"), str)
            and _HEX64.match(entry["sha256"])
            and type(entry.get("rows")) is int
            and entry["rows"] >= 0
            and type(entry.get("header", False)) is bool
        ):
            raise MalformedPackage(f"manifest.json: file entry {number} is not {{name, sha256, rows[, header]}}")
    return manifest


@dataclass
class Verification:
    problems: list[str] = field(default_factory=list)
    manifest: dict[str, Any] = field(default_factory=dict)
    # The key the signature was checked with.
    fingerprint: str = ""
    malformed: str = ""


def _check(
    path: Path, expected_public_key: bytes | None, expected_fingerprint: str | None, result: Verification
) -> None:
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile, ValueError) as exc:
        raise MalformedPackage(f"not a readable ZIP file ({_one_line(exc)})") from None
    with archive:
        if len(set(archive.namelist())) != len(archive.namelist()):
            # Readers disagree on which copy of a name they show: a forged first copy could pass for the real.
            raise MalformedPackage("a file name appears more than once in the package")
        names = set(archive.namelist())
        missing = sorted({"manifest.json", "manifest.sig", "public_key.pem"} - names)
        if missing:
            raise MalformedPackage(f"{', '.join(missing)} missing from the package")
        manifest_bytes = _read(archive, "manifest.json")
        try:
            embedded = _public_key(_read(archive, "public_key.pem"))
        except (ValueError, TypeError, UnsupportedAlgorithm):
            raise MalformedPackage("public_key.pem is not an Ed25519 public key (PEM)") from None
        key = embedded
        if expected_public_key is not None:
            key = _public_key(expected_public_key)
            if _raw_fingerprint(embedded) != _raw_fingerprint(key):
                result.problems.append("public_key.pem: not the expected public key")
        elif expected_fingerprint is not None and _raw_fingerprint(embedded) != expected_fingerprint:
            result.problems.append(
                f"public_key.pem: its fingerprint is {_raw_fingerprint(embedded)}, expected {expected_fingerprint}"
            )
        result.fingerprint = _raw_fingerprint(key)
        try:
            signature = base64.b64decode(_read(archive, "manifest.sig").strip(), validate=True)
        except (binascii.Error, ValueError):
            raise MalformedPackage("manifest.sig is not base64") from None
        try:
            key.verify(signature, manifest_bytes)
        except (InvalidSignature, ValueError):
            result.problems.append("manifest.sig: the signature of manifest.json does not verify")
        result.manifest = manifest = _manifest(manifest_bytes)
        listed = set()
        for entry in manifest["files"]:
            name = entry["name"]
            listed.add(name)
            if name not in names:
                result.problems.append(f"{name}: listed in the manifest, missing from the package")
                continue
            try:
                digest = _digest(archive, name)
                rows = _rows(archive, name, entry.get("header", False))
            except _ARCHIVE_ERRORS as exc:
                raise MalformedPackage(f"{name} cannot be read from the archive ({_one_line(exc)})") from None
            except (UnicodeDecodeError, csv.Error):
                result.problems.append(f"{name}: not readable as text")
                continue
            if digest != entry["sha256"]:
                result.problems.append(f"{name}: SHA-256 is {digest}, the manifest says {entry['sha256']}")
            if rows != entry["rows"]:
                result.problems.append(f"{name}: {rows} rows, the manifest says {entry['rows']}")
        for name in sorted(names - listed - FIXED):
            result.problems.append(f"{name}: in the package but not in the manifest")


def package_verify(
    path: Path, *, expected_public_key: bytes | None = None, expected_fingerprint: str | None = None
) -> Verification:
    """Every check, the problems as one line each; a malformed package is reported, never raised."""
    result = Verification()
    try:
        _check(path, expected_public_key, expected_fingerprint, result)
    except MalformedPackage as exc:
        result.malformed = str(exc)
    except (*_ARCHIVE_ERRORS, ValueError, KeyError, TypeError, RecursionError) as exc:
        # Whatever else a crafted archive may raise: still a reason, not a traceback.
        result.malformed = f"cannot be read ({type(exc).__name__}: {_one_line(exc)})"
    return result


def verify_package(
    path: Path, *, expected_public_key: bytes | None = None, expected_fingerprint: str | None = None
) -> tuple[list[str], dict[str, Any]]:
    """(problems, manifest). No problems: every file is as the signed manifest says."""
    result = package_verify(path, expected_public_key=expected_public_key, expected_fingerprint=expected_fingerprint)
    if result.malformed:
        return [*result.problems, f"malformed package: {result.malformed}"], {}
    return result.problems, result.manifest


# --- the command line (python -m audit.evidence_verify, manage.py verify_export) ---------------------------

REFUSED = (
    "REFUSED: no expected key. The package carries its own public key, so anyone can re-sign a changed package "
    "and it would still verify. Give --public-key PEM (the key Tollgate publishes) or --fingerprint SHA256HEX "
    "(of that key); or --trust-embedded-key to check integrity only.\n"
)
TRUST_WARNING = (
    "WARNING: --trust-embedded-key: checked against the key inside the package. This proves the files are "
    "intact as signed, NOT who signed them: a re-signed package passes too.\n"
)


def add_key_arguments(parser: argparse.ArgumentParser) -> None:
    keys = parser.add_mutually_exclusive_group()
    keys.add_argument("--public-key", type=Path, help="PEM file of the key the package must be signed with")
    keys.add_argument("--fingerprint", help="SHA-256 (hex) of the raw public key the package must be signed with")
    keys.add_argument(
        "--trust-embedded-key",
        action="store_true",
        help="check against the key inside the package: integrity only, not who made it",
    )


def verify_from_command_line(
    *, file: Path, public_key: Path | None, fingerprint: str | None, trust_embedded_key: bool, out: TextIO, err: TextIO
) -> int:
    """Print what does not match (exit status 1), what was verified (0), or why it refused (2)."""
    expected_key: bytes | None = None
    if public_key is not None:
        try:
            expected_key = public_key.read_bytes()
            _public_key(expected_key)
        except (OSError, ValueError, TypeError, UnsupportedAlgorithm) as exc:
            err.write(f"ERROR: --public-key {public_key}: not a readable Ed25519 public key (PEM): {_one_line(exc)}\n")
            return 2
    elif fingerprint is not None:
        fingerprint = fingerprint.strip().lower().replace(":", "")
        if not _HEX64.match(fingerprint):
            err.write("ERROR: --fingerprint is the SHA-256 of the public key: 64 hexadecimal digits.\n")
            return 2
    elif not trust_embedded_key:
        err.write(REFUSED)
        return 2
    else:
        err.write(TRUST_WARNING)
    result = package_verify(file, expected_public_key=expected_key, expected_fingerprint=fingerprint)
    for problem in result.problems:
        err.write(f"MISMATCH {problem}\n")
    if result.malformed:
        err.write(f"MALFORMED {file}: {result.malformed}\n")
    if result.problems or result.malformed:
        return 1
    for entry in result.manifest["files"]:
        out.write(f"  {entry['name']}: {entry['rows']} rows, sha256 {entry['sha256'][:16]}… ok\n")
    period = result.manifest["period"]
    origin = "the EMBEDDED key (integrity only)" if trust_embedded_key else "the expected key"
    out.write(
        f"OK: {_one_line(result.manifest['export_type'])} {_one_line(period['from'])}..{_one_line(period['to'])} "
        f"verified; signed by {origin}, SHA-256 fingerprint {result.fingerprint}\n"
    )
    return 0


def main(argv: list[str] | None = None, *, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m audit.evidence_verify", description="Check a Tollgate evidence package offline."
    )
    parser.add_argument("file", type=Path)
    parser.add_argument("pem", nargs="?", type=Path, help="the same as --public-key (the older form)")
    add_key_arguments(parser)
    arguments = parser.parse_args(argv)
    if arguments.pem is not None and (arguments.public_key or arguments.fingerprint or arguments.trust_embedded_key):
        parser.error("give the expected key once: PEM or --public-key, --fingerprint, --trust-embedded-key")
    return verify_from_command_line(
        file=arguments.file,
        public_key=arguments.public_key or arguments.pem,
        fingerprint=arguments.fingerprint,
        trust_embedded_key=arguments.trust_embedded_key,
        out=out,
        err=err,
    )


if __name__ == "__main__":
    raise SystemExit(main())
