"""Checkpoint anchors: every signed checkpoint also leaves the database, as a file of its own.

Someone with write access to the database can delete or rewrite checkpoint rows together with the
events they vouch for; they cannot take back a file written to a directory the application can only
add to (a separate mount or host, `chattr +a`, object-lock storage synced from it: docs/audit.md,
Keeping the anchors safe). Each file holds the signed payload and its signature, so it verifies on its own:

    {"algorithm": "Ed25519", "checkpoint": {...the signed fields...}, "signature": "<base64>"}

where the signature is over the canonical JSON of "checkpoint" (`audit.chain.canonical`). Files are
created exclusively, read-only, and fsync'd with their directory. Each checkpoint is also logged on
the `tollgate.audit.anchor` logger, one JSON line, for a log shipper to keep a second copy.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.conf import settings

from audit.chain import canonical

anchor_logger = logging.getLogger("tollgate.audit.anchor")

_NAME = re.compile(r"^checkpoint-(\d{8}T\d{4}Z)\.json$")
_SIGNED_FIELDS = {"period_end", "first_sequence", "last_sequence", "count", "last_hash", "previous_signature"}


class AuditAnchorConflict(Exception):
    """An anchor for this hour exists with other content: what the database holds now is not what was
    signed when the hour was checkpointed (or another installation writes to the same directory)."""


def anchor_directory() -> Path:
    return Path(settings.TOLLGATE_AUDIT_ANCHOR_DIR)


def anchor_name(period_end: datetime) -> str:
    return f"checkpoint-{period_end.astimezone(UTC):%Y%m%dT%H%MZ}.json"


def anchor_content(*, signed_payload: bytes, signature: str) -> bytes:
    checkpoint = json.loads(signed_payload)
    return canonical({"algorithm": "Ed25519", "checkpoint": checkpoint, "signature": signature}) + b"\n"


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def anchor_write(*, period_end: datetime, content: bytes, directory: Path | None = None) -> Path:
    """Write the anchor of the hour ending `period_end` once. An identical file already there is fine (a
    retried run signs the same bytes: Ed25519 is deterministic); a different one is AuditAnchorConflict."""
    directory = directory or anchor_directory()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / anchor_name(period_end)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
    except FileExistsError:
        if path.read_bytes() == content:
            return path
        raise AuditAnchorConflict(
            f"{path} exists with other content than the checkpoint signed now for the hour to "
            f"{period_end.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
        ) from None
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(content)
            file.flush()
            os.fsync(file.fileno())
    except BaseException:
        # A partial file would be a conflict for ever after; only this call created it.
        path.unlink(missing_ok=True)
        raise
    _fsync_directory(directory)
    return path


def anchor_log(*, signed_payload: bytes, signature: str) -> None:
    checkpoint = json.loads(signed_payload)
    record = {
        "period_end": checkpoint["period_end"],
        "last_sequence": checkpoint["last_sequence"],
        "last_hash": checkpoint["last_hash"],
        "signature": signature,
    }
    anchor_logger.info(canonical({"audit_checkpoint": record}).decode())


@dataclass(frozen=True)
class Anchor:
    """One anchor file as read back: the signed fields, exactly as signed, and the signature."""

    name: str
    checkpoint: dict[str, Any]
    signature: str

    @property
    def period_end(self) -> str:
        return str(self.checkpoint["period_end"])

    @property
    def last_sequence(self) -> int:
        return int(self.checkpoint["last_sequence"])

    @property
    def last_hash(self) -> str:
        return str(self.checkpoint["last_hash"])

    @property
    def previous_signature(self) -> str:
        return str(self.checkpoint["previous_signature"])

    def payload(self) -> bytes:
        return canonical(self.checkpoint)


def _parse(name: str, data: bytes) -> Anchor:
    document = json.loads(data)
    if not isinstance(document, dict) or set(document) != {"algorithm", "checkpoint", "signature"}:
        raise ValueError("not an anchor document")
    checkpoint, signature = document["checkpoint"], document["signature"]
    if document["algorithm"] != "Ed25519" or not isinstance(signature, str) or not isinstance(checkpoint, dict):
        raise ValueError("not an Ed25519 anchor")
    if set(checkpoint) != _SIGNED_FIELDS:
        raise ValueError("its checkpoint does not have the signed fields")
    if not isinstance(checkpoint["last_sequence"], int) or not all(
        isinstance(checkpoint[field], str) for field in ("period_end", "last_hash", "previous_signature")
    ):
        raise ValueError("its checkpoint fields have the wrong types")
    period_end = datetime.strptime(checkpoint["period_end"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    if anchor_name(period_end) != name:
        raise ValueError("its name is not the hour it checkpoints")
    return Anchor(name=name, checkpoint=checkpoint, signature=signature)


def anchors_read(directory: Path | None = None) -> tuple[list[Anchor], list[str]]:
    """(the anchors in hour order, the names of files that look like anchors and are not readable as
    one). Other files (a README, lost+found) are not anchors and are left alone."""
    directory = directory or anchor_directory()
    if not directory.is_dir():
        return [], []
    anchors, unreadable = [], []
    for path in sorted(directory.iterdir()):
        if not _NAME.match(path.name):
            continue
        try:
            anchors.append(_parse(path.name, path.read_bytes()))
        except (OSError, ValueError, KeyError, TypeError):
            unreadable.append(path.name)
    # Names sort as the hours they stand for (fixed-width UTC timestamps).
    return anchors, unreadable
