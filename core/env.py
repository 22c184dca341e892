"""Reading configuration from the environment.

Every secret may be given directly (`NAME`) or as a path (`NAME_FILE`), the convention of Docker and
Kubernetes secrets. Errors name the variable and never echo its value.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import environ
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_der_public_key, load_pem_private_key
from django.core.exceptions import ImproperlyConfigured

env = environ.Env()

_KEY_ID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


def secret_optional(name: str) -> str:
    """The secret `name`, from `name` or the file named by `name_FILE`; "" when neither is set."""
    path = os.environ.get(f"{name}_FILE")
    if path:
        try:
            return Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE names a file that cannot be read ({exc.strerror}).") from None
    return os.environ.get(name, "").strip()


def secret(name: str, *, dev_default: str, debug: bool) -> str:
    """The secret `name`, from `name` or the file named by `name_FILE`; required unless `debug`."""
    value = secret_optional(name)
    if value:
        return value
    if debug:
        return dev_default
    raise ImproperlyConfigured(
        f"{name} is required when DJANGO_DEBUG is false: set {name} or {name}_FILE (see docs/configuration.md)."
    )


@dataclass(frozen=True)
class EncryptionKey:
    """A key-encryption key: its id is stored beside every ciphertext it wraps."""

    key_id: str
    key: bytes

    def __repr__(self) -> str:  # never print the key material, not even in a debug page
        return f"EncryptionKey(key_id={self.key_id!r})"


def parse_encryption_keys(raw: str) -> list[EncryptionKey]:
    """Parse `id:base64key,id:base64key` (first is primary); each key is 32 bytes (AES-256)."""
    keys: list[EncryptionKey] = []
    for position, item in enumerate(part.strip() for part in raw.split(",") if part.strip()):
        key_id, sep, encoded = item.partition(":")
        if not sep or not _KEY_ID.match(key_id):
            raise ImproperlyConfigured(
                f"TOLLGATE_ENCRYPTION_KEYS entry {position + 1} must look like '<id>:<base64 of 32 bytes>', "
                "with an id of letters, digits, '-' or '_'."
            )
        try:
            key = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            key = b""
        if len(key) != 32:
            raise ImproperlyConfigured(
                f"TOLLGATE_ENCRYPTION_KEYS entry '{key_id}' is not the base64 encoding of 32 bytes."
            )
        if any(existing.key_id == key_id for existing in keys):
            raise ImproperlyConfigured(f"TOLLGATE_ENCRYPTION_KEYS names the id '{key_id}' twice.")
        keys.append(EncryptionKey(key_id=key_id, key=key))
    if not keys:
        raise ImproperlyConfigured("TOLLGATE_ENCRYPTION_KEYS holds no key.")
    return keys


def parse_signing_key(raw: str) -> Ed25519PrivateKey:
    """An Ed25519 private key given as PEM (PKCS#8) or as the base64 of its 32 raw bytes."""
    try:
        if "-----BEGIN" in raw:
            key = load_pem_private_key(raw.replace("\\n", "\n").encode(), password=None)
        else:
            key = Ed25519PrivateKey.from_private_bytes(base64.b64decode(raw, validate=True))
    except (ValueError, TypeError, binascii.Error):
        raise ImproperlyConfigured(
            "TOLLGATE_AUDIT_SIGNING_KEY is neither an Ed25519 PEM private key nor the base64 of 32 raw bytes."
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ImproperlyConfigured("TOLLGATE_AUDIT_SIGNING_KEY must be an Ed25519 key.")
    return key


_HOUR = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:00Z$")


def parse_retired_public_keys(raw: str) -> tuple[tuple[datetime, Ed25519PublicKey], ...]:
    """Parse `UNTIL=KEY,UNTIL=KEY`: the audit signing keys in use before the current one, each with the end
    of the last hour it signed a checkpoint for (`2026-12-01T09:00Z`), oldest first. KEY is the base64 of
    the 32 raw bytes of the Ed25519 public key (`manage.py audit_public_key --raw`) or of its DER."""
    keys: list[tuple[datetime, Ed25519PublicKey]] = []
    for position, item in enumerate(part.strip() for part in raw.split(",") if part.strip()):
        until, sep, encoded = item.partition("=")
        name = f"TOLLGATE_AUDIT_RETIRED_PUBLIC_KEYS entry {position + 1}"
        if not sep or not _HOUR.match(until):
            raise ImproperlyConfigured(f"{name} must look like 'YYYY-MM-DDTHH:00Z=<base64 public key>'.")
        try:
            der = base64.b64decode(encoded, validate=True)
            key = Ed25519PublicKey.from_public_bytes(der) if len(der) == 32 else load_der_public_key(der)
        except (binascii.Error, ValueError, TypeError):
            raise ImproperlyConfigured(f"{name} is not the base64 of an Ed25519 public key.") from None
        if not isinstance(key, Ed25519PublicKey):
            raise ImproperlyConfigured(f"{name} is not an Ed25519 public key.")
        moment = datetime.strptime(until, "%Y-%m-%dT%H:%MZ").replace(tzinfo=UTC)
        if keys and moment <= keys[-1][0]:
            raise ImproperlyConfigured(f"{name}: list the retired keys oldest first, each ending later.")
        keys.append((moment, key))
    return tuple(keys)
