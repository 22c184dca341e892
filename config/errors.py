"""Errors a caller can act on: each has a stable `code` (DESIGN.md §6) and is mapped to HTTP in one place."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Base of every error a service raises for its caller to handle.

    `detail` is a sentence a person can read; it must never contain a secret or a redacted value.
    """

    code = "invalid_request"
    title = "Invalid request"
    status = 400

    def __init__(self, detail: str, *, extra: dict[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra or {}


class RoleRequired(DomainError):
    """The actor lacks the role (permission) for what they tried."""

    code = "permission_denied"
    title = "Permission denied"
    status = 403


class ReasonRequired(DomainError):
    code = "reason_required"
    title = "Reason required"
    status = 400


class RequestTooLarge(DomainError):
    """A body over TOLLGATE_MAX_REQUEST_BYTES: refused before it is read."""

    code = "request_too_large"
    title = "Request too large"
    status = 413
