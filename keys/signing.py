"""Signed requests to Tollgate (docs/api.md, "Signed requests"): the canonical string, its signature, and
`TollgateSigner`, an httpx Auth that signs every request a client sends, each retry afresh.

This module imports only the standard library and httpx2 (the HTTP library of the official Anthropic SDK
Tollgate is tested with), so a service calling Tollgate may copy this file as it is. Tollgate verifies with
the same functions (keys.services.request_signature_refusal).

    import anthropic, httpx2
    from tollgate_signing import TollgateSigner

    client = anthropic.Anthropic(
        api_key="tg_prd_…",
        base_url="https://tollgate.example.com/anthropic",
        http_client=httpx2.Client(auth=TollgateSigner("tgsig_…")),
    )
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Generator
from urllib.parse import quote

import httpx2

SCHEME = "tollgate-v1"
TIMESTAMP_HEADER = "X-Tollgate-Timestamp"
NONCE_HEADER = "X-Tollgate-Nonce"
SIGNATURE_HEADER = "X-Tollgate-Signature"
SIGNATURE_PREFIX = "v1="
# Besides letters, digits and "-._~" (which quote() never escapes): the characters RFC 3986 allows in a path.
_PATH_SAFE = "/!$&'()*+,;=:@"


def canonical_target(path: str, query: str) -> str:
    """The request target as signed: the path (given percent-decoded) percent-encoded as UTF-8 one fixed
    way, then `?` and the query string exactly as sent (still percent-encoded) when there is one."""
    encoded = quote(path, safe=_PATH_SAFE)
    return f"{encoded}?{query}" if query else encoded


def canonical_string(*, method: str, path: str, query: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    """What is signed: six lines joined by a line feed (no trailing one), encoded as UTF-8."""
    return "\n".join(
        (
            SCHEME,
            method.upper(),
            canonical_target(path, query),
            timestamp,
            nonce,
            hashlib.sha256(body).hexdigest(),
        )
    ).encode()


def signature(secret: str, canonical: bytes) -> str:
    """The `X-Tollgate-Signature` value: `v1=` and the lowercase hex HMAC-SHA256 of the canonical string,
    keyed with the signing secret's UTF-8 bytes (the whole secret, `tgsig_` included)."""
    return SIGNATURE_PREFIX + hmac.new(secret.encode(), canonical, hashlib.sha256).hexdigest()


def signed_headers(
    secret: str,
    *,
    method: str,
    path: str,
    query: str,
    body: bytes,
    now: float | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """The three headers that sign one request (a fresh nonce, the current time unless given)."""
    timestamp = str(int(time.time() if now is None else now))
    nonce = nonce if nonce is not None else secrets.token_urlsafe(16)
    canonical = canonical_string(method=method, path=path, query=query, timestamp=timestamp, nonce=nonce, body=body)
    return {TIMESTAMP_HEADER: timestamp, NONCE_HEADER: nonce, SIGNATURE_HEADER: signature(secret, canonical)}


class TollgateSigner(httpx2.Auth):
    """Signs each request an httpx2 client sends: pass it as the client's `auth`. httpx2 runs it for every
    `send`, and the Anthropic SDK sends each attempt of a retried call anew, so a retry carries a new
    timestamp, nonce and signature (the same signature twice is refused as a replay)."""

    requires_request_body = True  # the body is hashed: httpx2 reads a streamed body before auth_flow

    def __init__(self, secret: str, *, clock: Callable[[], float] = time.time) -> None:
        self._secret = secret
        self._clock = clock

    def auth_flow(self, request: httpx2.Request) -> Generator[httpx2.Request, httpx2.Response, None]:
        request.headers.update(
            signed_headers(
                self._secret,
                method=request.method,
                path=request.url.path,
                query=request.url.query.decode("ascii"),
                body=request.content,
                now=self._clock(),
            )
        )
        yield request
