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
