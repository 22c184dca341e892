"""API client tokens: `tg_<env>_<32 random base62><6 checksum base62>`.

190 random bits; the checksum (CRC32 of the rest, like GitHub's tokens) lets a secret scanner recognise
a token and lets us refuse a mistyped one before touching the database. Only a SHA-256 digest is
stored; the first 12 random characters are the lookup key.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import string
import zlib

from core.environments import Environment

ALPHABET = string.digits + string.ascii_letters
RANDOM_CHARS = 32
CHECKSUM_CHARS = 6
LOOKUP_CHARS = 12
ENV_CODES = {Environment.DEVELOPMENT: "dev", Environment.STAGING: "stg", Environment.PRODUCTION: "prd"}
TOKEN = re.compile(rf"^tg_(dev|stg|prd)_([0-9A-Za-z]{{{RANDOM_CHARS}}})([0-9A-Za-z]{{{CHECKSUM_CHARS}}})$")


def _base62(number: int, width: int) -> str:
    digits = []
    for _ in range(width):
        number, remainder = divmod(number, 62)
        digits.append(ALPHABET[remainder])
    return "".join(reversed(digits))


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode()), CHECKSUM_CHARS)


def token_generate(environment: str) -> str:
    body = f"tg_{ENV_CODES[Environment(environment)]}_" + "".join(secrets.choice(ALPHABET) for _ in range(RANDOM_CHARS))
    return body + _checksum(body)


def token_parse(token: str) -> tuple[str, str] | None:
    """(environment, lookup id) of a well-formed token whose checksum holds; None otherwise."""
    match = TOKEN.match(token)
    if match is None or _checksum(token[:-CHECKSUM_CHARS]) != match.group(3):
        return None
    environment = next(env for env, code in ENV_CODES.items() if code == match.group(1))
    return environment, match.group(2)[:LOOKUP_CHARS]


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
