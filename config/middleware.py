"""Request-wide middleware: the request id, the client address and one access log line per request; and
the framing checks every API request passes before anything reads its body."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponseBase

from config.exceptions import anthropic_shaped, is_anthropic, problem_response
from core.context import RequestContext, bound, client_ip, new_request_id

logger = logging.getLogger("tollgate.request")

# An id a caller sends is kept (so a trace spans systems) only if it is short and plain: it is logged
# and stored in audit events, so nothing else may ride along in it.
_CALLER_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class RequestContextMiddleware:
    """Binds the request context, echoes `X-Request-ID` (also as `request-id` on the Anthropic-compatible
    endpoint) and logs the request once it is answered."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _CALLER_REQUEST_ID.match(incoming) else new_request_id()
        request.request_id = request_id  # type: ignore[attr-defined]
        started = time.perf_counter()
        with bound(RequestContext(request_id=request_id, client_ip=client_ip(request), request=request)):
            response = self.get_response(request)
            response["X-Request-ID"] = request_id
            if is_anthropic(request):  # where the Anthropic SDK reads it
                response["request-id"] = request_id
            # The path only: query strings may carry things that do not belong in logs.
            logger.info(
                "%s %s %s",
                request.method,
                request.path,
                response.status_code,
                extra={
                    "method": request.method,
                    "path": request.path,
                    "status": response.status_code,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                },
            )
        return response


_DECIMAL = re.compile(r"^[0-9]+$")
_ENCODED_NUL = re.compile(r"%00", re.IGNORECASE)


def api_request_refusal(request: HttpRequest) -> HttpResponseBase | None:
    """The problem answer for an API request whose framing is wrong, or None.

    Checked from the headers alone, so a body too large is refused before a byte of it is read (Django's
    own limit would raise RequestDataTooBig midway through a view). NUL cannot be stored by PostgreSQL,
    so a path or query string carrying one is refused here rather than failing in a query.
    """
    length = str(request.META.get("CONTENT_LENGTH") or "")
    if length and not _DECIMAL.match(length):
        return problem_response(
            code="invalid_request", title="Malformed request", status_code=400,
            detail="Content-Length must be a non-negative whole number of bytes.",
        )  # fmt: skip
    limit: int = settings.TOLLGATE_MAX_REQUEST_BYTES
    if length and int(length) > limit:
        return problem_response(
            code="request_too_large", title="Request too large", status_code=413,
            detail=f"The body is larger than {limit} bytes.",
        )  # fmt: skip
    coding = str(request.META.get("HTTP_CONTENT_ENCODING", "")).strip().lower()
    if coding not in ("", "identity"):  # a body the parser would read as it is, not as it was meant
        return problem_response(
            code="unsupported_media_type", title="Unsupported media type", status_code=415,
            detail="Request bodies are not decoded: send them without a Content-Encoding.",
        )  # fmt: skip
    if "\x00" in request.path_info or _ENCODED_NUL.search(str(request.META.get("QUERY_STRING", ""))):
        return problem_response(
            code="invalid_request", title="Malformed request", status_code=400,
            detail="The path and query string may not contain NUL characters.",
        )  # fmt: skip
    return None


class ApiRequestGuardMiddleware:
    """Refuses malformed API requests (above) as problem JSON; other paths pass untouched."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        if request.path_info.startswith("/api/") or is_anthropic(request):
            refusal = api_request_refusal(request)
            if refusal is not None:
                return anthropic_shaped(refusal) if is_anthropic(request) else refusal
        return self.get_response(request)
