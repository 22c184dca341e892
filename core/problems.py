"""Problem documents (RFC 9457): the body every API error is answered with, built from a DomainError or
from a code, title, status and detail."""

from __future__ import annotations

from typing import Any

from core.context import current_request_id
from core.errors import DomainError

PROBLEM_CONTENT_TYPE = "application/problem+json"


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


# Anthropic's error type for each status Tollgate answers with (the SDK raises its own class per status).
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    406: "invalid_request_error",
    409: "invalid_request_error",
    413: "request_too_large",
    415: "invalid_request_error",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
}


def anthropic_error_body(problem: dict[str, Any]) -> dict[str, Any]:
    """A problem document (docs/contract.md §6) in Anthropic's error shape; Tollgate's stable code rides
    along in `error.code`, the field errors (if any) in `error.errors`."""
    status = int(problem.get("status") or 500)
    error: dict[str, Any] = {
        "type": ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error"),
        "message": str(problem.get("detail") or problem.get("title") or ""),
        "code": problem.get("code", ""),
    }
    if "errors" in problem:
        error["errors"] = problem["errors"]
    return {"type": "error", "error": error, "request_id": problem.get("request_id")}
