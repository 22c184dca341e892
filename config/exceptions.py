"""The one place where errors become HTTP answers: RFC 9457 problem details (DESIGN.md §6)."""

from __future__ import annotations

import logging
from typing import Any

from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response

from audit.context import current_request_id
from config.errors import DomainError

logger = logging.getLogger(__name__)

PROBLEM_CONTENT_TYPE = "application/problem+json"

# DRF's own exceptions, mapped to the public codes.
_DRF_CODES: dict[type[exceptions.APIException], tuple[str, str]] = {
    exceptions.ParseError: ("invalid_request", "Malformed request"),
    exceptions.ValidationError: ("invalid_request", "Invalid request"),
    exceptions.UnsupportedMediaType: ("invalid_request", "Unsupported media type"),
    exceptions.NotAuthenticated: ("authentication_failed", "Authentication failed"),
    exceptions.AuthenticationFailed: ("authentication_failed", "Authentication failed"),
    exceptions.PermissionDenied: ("permission_denied", "Permission denied"),
    exceptions.NotFound: ("not_found", "Not found"),
    exceptions.MethodNotAllowed: ("method_not_allowed", "Method not allowed"),
    exceptions.NotAcceptable: ("not_acceptable", "Not acceptable"),
    exceptions.Throttled: ("rate_limited", "Rate limited"),
}


def problem_body(*, code: str, title: str, status_code: int, detail: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": f"/api/docs/errors#{code}",
        "title": title,
        "status": status_code,
        "detail": detail,
        "code": code,
        "request_id": current_request_id(),
        **extra,
    }


def domain_problem_body(exc: DomainError) -> dict[str, Any]:
    return problem_body(code=exc.code, title=exc.title, status_code=exc.status, detail=exc.detail, **exc.extra)


def problem(
    *, code: str, title: str, status_code: int, detail: str, headers: dict[str, str] | None = None, **extra: Any
) -> Response:
    body = problem_body(code=code, title=title, status_code=status_code, detail=detail, **extra)
    return Response(body, status=status_code, headers=headers, content_type=PROBLEM_CONTENT_TYPE)


def problem_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, DomainError):
        retry_after = getattr(exc, "retry_after", None)
        headers = {"Retry-After": str(retry_after)} if retry_after else None
        return Response(domain_problem_body(exc), status=exc.status, headers=headers, content_type=PROBLEM_CONTENT_TYPE)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    if isinstance(exc, exceptions.APIException):
        code, title = next(
            (value for klass, value in _DRF_CODES.items() if isinstance(exc, klass)),
            ("invalid_request", "Invalid request"),
        )
        headers = {}
        auth_header = getattr(exc, "auth_header", None)  # set by DRF on 401s
        if auth_header:
            headers["WWW-Authenticate"] = auth_header
        wait = getattr(exc, "wait", None)
        if isinstance(exc, exceptions.Throttled) and wait is not None:
            headers["Retry-After"] = str(max(1, int(wait)))
        extra: dict[str, Any] = {}
        if isinstance(exc, exceptions.AuthenticationFailed) and isinstance(exc.get_codes(), str):
            # Which check failed (malformed, unknown, revoked, expired, client_inactive, ...).
            extra["reason"] = exc.get_codes()
        if isinstance(exc, exceptions.ValidationError):
            extra["errors"] = exc.detail
            detail = "The request has invalid fields; see `errors`."
        else:
            detail = str(exc.detail)
        return problem(code=code, title=title, status_code=exc.status_code, detail=detail, headers=headers, **extra)
    # Anything else is a bug: log it with its traceback, answer without one.
    logger.exception("Unhandled error in API view")
    return problem(
        code="internal_error",
        title="Internal error",
        status_code=status.HTTP_500_INTERNAL_SERVER_ERROR,
        detail="Something went wrong on our side; the request id identifies it in our logs.",
    )
