"""Errors of keys and API clients; each has a stable code (config.errors.DomainError)."""

from __future__ import annotations

from config.errors import DomainError


class KeyOperationRefused(DomainError):
    code = "invalid_request"
    title = "Key operation refused"
    status = 400


class AuthenticationFailed(DomainError):
    """`reason`: malformed, unknown, revoked, expired, client_inactive or client_expired."""

    code = "authentication_failed"
    title = "Authentication failed"
    status = 401

    def __init__(self, detail: str, *, reason: str) -> None:
        super().__init__(detail, extra={"reason": reason})
        self.reason = reason
