"""The audit trail's hash chain and signed checkpoints: encoding, hashing, signing and verification.

An event's hash is SHA-256 over a canonical JSON encoding (sorted keys, no spaces, UTC timestamps with
microseconds) of every recorded field and the previous event's hash. A checkpoint signs
`{period_end, first_sequence, last_sequence, count, last_hash, previous_signature}` with Ed25519, under the
key in force for its hour (`KeyRing`: the signing key can be rotated, and the old hours still verify).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings

GENESIS = "0" * 64
HASHED_FIELDS = (
    "sequence",
    "occurred_at",
    "actor_id",
    "actor_repr",
    "action",
    "object_type",
    "object_id",
    "object_repr",
    "changes",
    "reason",
    "request_id",
    "client_ip",
    "previous_hash",
)


def canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def chain_timestamp(moment: datetime) -> str:
    """A time as hashes and signatures carry it: UTC, microseconds, "Z" (sorts as it runs)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event_hash(fields: dict[str, Any]) -> str:
    data = {name: fields[name] for name in HASHED_FIELDS}
    data["occurred_at"] = chain_timestamp(data["occurred_at"])
    return hashlib.sha256(canonical(data)).hexdigest()


def checkpoint_payload(
    *, period_end: datetime, first_sequence: int | None, last_sequence: int, count: int, last_hash: str,
    previous_signature: str,
) -> bytes:  # fmt: skip
    return canonical(
        {
            "period_end": chain_timestamp(period_end),
            "first_sequence": first_sequence,
            "last_sequence": last_sequence,
            "count": count,
            "last_hash": last_hash,
            "previous_signature": previous_signature,
        }
    )


def signing_key() -> Ed25519PrivateKey:
    key: Ed25519PrivateKey = settings.TOLLGATE_AUDIT_SIGNING_KEY
    return key


def sign(payload: bytes) -> str:
    return base64.b64encode(signing_key().sign(payload)).decode()


def public_key_pem(key: Ed25519PublicKey | None = None) -> bytes:
    return (key or signing_key().public_key()).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@dataclass(frozen=True)
class KeyRing:
    """The public keys checkpoints verify under: each retired key for the hours up to the last one it signed
    (TOLLGATE_AUDIT_RETIRED_PUBLIC_KEYS), the current key for every later hour. A retired key that leaked
    therefore cannot vouch for an hour after its retirement."""

    current: Ed25519PublicKey
    retired: tuple[tuple[datetime, Ed25519PublicKey], ...] = ()

    def key_for(self, period_end: datetime | str) -> Ed25519PublicKey:
        stamp = period_end if isinstance(period_end, str) else chain_timestamp(period_end)
        for until, key in self.retired:
            if stamp <= chain_timestamp(until):
                return key
        return self.current


def key_ring(current: Ed25519PublicKey | None = None) -> KeyRing:
    """The configured ring; `current` replaces the configured key's public half (an auditor's copy)."""
    return KeyRing(current or signing_key().public_key(), settings.TOLLGATE_AUDIT_RETIRED_PUBLIC_KEYS)


def public_key_raw(key: Ed25519PublicKey | None = None) -> str:
    """The base64 of the 32 raw bytes of a public key: how TOLLGATE_AUDIT_RETIRED_PUBLIC_KEYS lists it."""
    raw = (key or signing_key().public_key()).public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def signature_valid(public_key: Ed25519PublicKey, payload: bytes, signature: str) -> bool:
    try:
        public_key.verify(base64.b64decode(signature), payload)
    except (InvalidSignature, ValueError):
        return False
    return True


@dataclass(frozen=True)
class Problem:
    """The first thing wrong with the trail: the sequence number where it is, and what."""

    sequence: int
    reason: str


def first_break(events: Iterable[dict[str, Any]]) -> tuple[Problem | None, int, str]:
    """Walk events in sequence order: (the first problem or None, the last sequence, its hash)."""
    expected, previous = 1, GENESIS
    for event in events:
        sequence = event["sequence"]
        if sequence != expected:
            return Problem(expected, f"event #{expected} is missing (next is #{sequence})"), expected - 1, previous
        if event["previous_hash"] != previous:
            return Problem(sequence, "does not follow the event before it (reordered, inserted or edited)"), 0, ""
        if event_hash(event) != event["hash"]:
            return Problem(sequence, "its content does not match its hash (edited)"), 0, ""
        expected, previous = sequence + 1, event["hash"]
    return None, expected - 1, previous
