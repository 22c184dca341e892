"""Secrets at rest: AES-256-GCM under the key-encryption keys of TOLLGATE_ENCRYPTION_KEYS.

Each ciphertext is stored with the id of the key that wrote it, and its associated data names the row
and environment it belongs to: a ciphertext copied onto another row, or another environment, fails
authentication instead of decrypting. Django's SECRET_KEY plays no part.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings

from core.env import EncryptionKey

NONCE_BYTES = 12


class DecryptionFailed(Exception):
    """The ciphertext did not authenticate: wrong row, wrong key, or tampered. Never carries the data."""


@dataclass(frozen=True)
class Sealed:
    """A ciphertext (base64 of nonce + ciphertext + tag) and the id of the key that sealed it."""

    ciphertext: str
    key_id: str


def _keys() -> list[EncryptionKey]:
    keys: list[EncryptionKey] = settings.TOLLGATE_ENCRYPTION_KEYS
    return keys


def primary_key_id() -> str:
    return _keys()[0].key_id


def associated_data(*, kind: str, row: str, environment: str) -> bytes:
    """What a ciphertext is bound to: the kind of secret, its row's stable id and its environment."""
    return f"tollgate/{kind}/{row}/{environment}".encode()


def seal(plaintext: str, *, aad: bytes) -> Sealed:
    key = _keys()[0]
    nonce = os.urandom(NONCE_BYTES)
    ciphertext = AESGCM(key.key).encrypt(nonce, plaintext.encode(), aad)
    return Sealed(ciphertext=base64.b64encode(nonce + ciphertext).decode(), key_id=key.key_id)


def unseal(sealed: Sealed, *, aad: bytes) -> str:
    key = next((key for key in _keys() if key.key_id == sealed.key_id), None)
    if key is None:
        raise DecryptionFailed(f"the key-encryption key '{sealed.key_id}' is not configured")
    try:
        raw = base64.b64decode(sealed.ciphertext, validate=True)
        plaintext = AESGCM(key.key).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], aad)
    except (InvalidTag, ValueError):
        raise DecryptionFailed("the ciphertext does not authenticate for this row") from None
    return plaintext.decode()
