"""Request-wide middleware: the request id, the client address and one access log line per request."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponseBase

from audit.context import RequestContext, bound, new_request_id

logger = logging.getLogger("tollgate.request")

# An id a caller sends is kept (so a trace spans systems) only if it is short and plain: it is logged
# and stored in audit events, so nothing else may ride along in it.
_CALLER_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def client_ip(request: HttpRequest) -> str | None:
    """The caller's address: REMOTE_ADDR, or the address our trusted proxies saw (X-Forwarded-For)."""
    trusted_proxies: int = getattr(settings, "TOLLGATE_TRUSTED_PROXIES", 0)
    if trusted_proxies:
        header = str(request.META.get("HTTP_X_FORWARDED_FOR", ""))
        forwarded = [part.strip() for part in header.split(",") if part.strip()]
        if len(forwarded) >= trusted_proxies:
            return forwarded[-trusted_proxies]
    return str(request.META.get("REMOTE_ADDR", "")) or None


class RequestContextMiddleware:
    """Binds the request context, echoes `X-Request-ID` and logs the request once it is answered."""

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
