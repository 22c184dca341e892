"""What the gateway keeps sealed at rest (job results, batch results, placeholder mappings): encrypted
under the key-encryption key, bound to the kind of record, its id and its environment."""

from __future__ import annotations

from keys.crypto import Sealed, associated_data, seal, unseal


def sealed_for(kind: str, row: str, environment: str, plaintext: str) -> Sealed:
    return seal(plaintext, aad=associated_data(kind=kind, row=row, environment=environment))


def unsealed(kind: str, row: str, environment: str, ciphertext: str, kek_id: str) -> str:
    return unseal(Sealed(ciphertext, kek_id), aad=associated_data(kind=kind, row=row, environment=environment))
