"""The one place where errors become HTTP answers: RFC 9457 problem details (docs/contract.md §6)."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

import redis.exceptions
from django.core.exceptions import PermissionDenied, RequestDataTooBig, SuspiciousOperation
from django.core.serializers.json import DjangoJSONEncoder
from django.db import InterfaceError, OperationalError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase
from django.views import defaults
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, status
from rest_framework.response import Response

from core.errors import DomainError, RequestTooLarge, ServiceUnavailable
from core.problems import PROBLEM_CONTENT_TYPE, anthropic_error_body, domain_problem_body, problem_body

logger = logging.getLogger(__name__)

# A dependency of Tollgate's own that did not answer (Redis restarting, the database failing over): a 503 the
# caller may retry, never a 500. On PostgreSQL a serialization failure or deadlock is an OperationalError too:
# retrying is right for those as well.
OUTAGES = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OperationalError, InterfaceError)

# DRF's own exceptions, mapped to the public codes.
_DRF_CODES: dict[type[exceptions.APIException], tuple[str, str]] = {
    exceptions.ParseError: ("invalid_request", "Malformed request"),
    exceptions.ValidationError: ("invalid_request", "Invalid request"),
    exceptions.UnsupportedMediaType: ("unsupported_media_type", "Unsupported media type"),
    exceptions.NotAuthenticated: ("authentication_failed", "Authentication failed"),
    exceptions.AuthenticationFailed: ("authentication_failed", "Authentication failed"),
    exceptions.PermissionDenied: ("permission_denied", "Permission denied"),
    exceptions.NotFound: ("not_found", "Not found"),
    exceptions.MethodNotAllowed: ("method_not_allowed", "Method not allowed"),
    exceptions.NotAcceptable: ("not_acceptable", "Not acceptable"),
    exceptions.Throttled: ("rate_limited", "Rate limited"),
}


def problem(
    *, code: str, title: str, status_code: int, detail: str, headers: dict[str, str] | None = None, **extra: Any
) -> Response:
    body = problem_body(code=code, title=title, status_code=status_code, detail=detail, **extra)
    return Response(body, status=status_code, headers=headers, content_type=PROBLEM_CONTENT_TYPE)


def problem_response(*, code: str, title: str, status_code: int, detail: str, **extra: Any) -> HttpResponse:
    """A problem answer outside DRF (middleware, URL handlers), identical to what the views answer."""
    body = problem_body(code=code, title=title, status_code=status_code, detail=detail, **extra)
    return HttpResponse(json.dumps(body, cls=DjangoJSONEncoder), status=status_code, content_type=PROBLEM_CONTENT_TYPE)


def _django_exception_as_api_exception(exc: Exception) -> Exception:
    """Django's own request errors, as what they mean to an API caller (DRF alone maps only Http404)."""
    if isinstance(exc, RequestDataTooBig):  # a body larger than DATA_UPLOAD_MAX_MEMORY_SIZE was read
        return RequestTooLarge("The body is larger than this API accepts.")
    if isinstance(exc, SuspiciousOperation):
        return exceptions.ParseError("The request was refused as malformed.")
    if isinstance(exc, PermissionDenied):
        return exceptions.PermissionDenied()
    if isinstance(exc, Http404):
        return exceptions.NotFound()
    if isinstance(exc, OUTAGES):
        logger.error("A dependency did not answer: %s", type(exc).__name__, exc_info=exc)
        return ServiceUnavailable()
    return exc


def problem_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    exc = _django_exception_as_api_exception(exc)
    domain_error = getattr(exc, "domain_error", None)
    if isinstance(exc, exceptions.AuthenticationFailed) and isinstance(domain_error, DomainError):
        # A refusal of authentication with a code of its own (keys.authentication.SignatureNotAccepted).
        auth_header = getattr(exc, "auth_header", None)
        return Response(
            domain_problem_body(domain_error),
            status=domain_error.status,
            headers={"WWW-Authenticate": auth_header} if auth_header else None,
            content_type=PROBLEM_CONTENT_TYPE,
        )
    if isinstance(exc, DomainError):
        retry_after = getattr(exc, "retry_after", None)
        headers = {"Retry-After": str(retry_after)} if retry_after else None
        return Response(domain_problem_body(exc), status=exc.status, headers=headers, content_type=PROBLEM_CONTENT_TYPE)
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


def anthropic_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """The Anthropic-compatible endpoint's errors: the same mapping, in Anthropic's error shape."""
    response = problem_exception_handler(exc, context)
    if response is not None:
        response.data = anthropic_error_body(response.data)
        response.content_type = "application/json"
        if response.status_code == 429 and "Retry-After" not in response:
            response["Retry-After"] = "1"
    return response


def anthropic_shaped(response: HttpResponseBase) -> HttpResponse:
    """A problem answer made outside DRF (middleware, URL handlers), in Anthropic's error shape."""
    body = anthropic_error_body(json.loads(response.content))  # type: ignore[attr-defined]
    shaped = HttpResponse(json.dumps(body, cls=DjangoJSONEncoder), status=response.status_code,
                          content_type="application/json")  # fmt: skip
    for header in ("Retry-After", "WWW-Authenticate"):
        if header in response:
            shaped[header] = response[header]
    return shaped


# --- Django's error handlers (config/urls.py): problem JSON under /api/ (in Anthropic's shape under
# /anthropic/), Django's HTML pages elsewhere --------------------------------------------------------------


def is_anthropic(request: HttpRequest) -> bool:
    return request.path_info.startswith("/anthropic/")


def _is_api(request: HttpRequest) -> bool:
    return request.path_info.startswith("/api/") or is_anthropic(request)


def _shaped(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    return anthropic_shaped(response) if is_anthropic(request) else response


@csrf_exempt  # like every API view: the API authenticates with tokens, never with a session cookie
def api_not_found(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    """Any path under /api/ (or /anthropic/) that names no endpoint, whatever the method."""
    return _shaped(request, problem_response(
        code="not_found", title="Not found", status_code=404, detail="No API endpoint answers at this path."
    ))  # fmt: skip


def bad_request_view(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _is_api(request) and isinstance(exception, RequestDataTooBig):
        return _shaped(request, problem_response(
            code="request_too_large", title="Request too large", status_code=413,
            detail="The body is larger than this API accepts.",
        ))  # fmt: skip
    if _is_api(request):
        return _shaped(request, problem_response(
            code="invalid_request", title="Malformed request", status_code=400,
            detail="The request was refused as malformed.",
        ))  # fmt: skip
    return defaults.bad_request(request, exception)


def permission_denied_view(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _is_api(request):
        return _shaped(request, problem_response(
            code="permission_denied", title="Permission denied", status_code=403, detail="Permission denied."
        ))  # fmt: skip
    return defaults.permission_denied(request, exception)


def not_found_view(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _is_api(request):
        return api_not_found(request)
    return defaults.page_not_found(request, exception)


def server_error_view(request: HttpRequest) -> HttpResponse:
    """Reached when an exception escapes everything else (Django has logged it with its traceback): still
    inside its `except`, so an outage of the database or cache (in a middleware, say) is told apart."""
    if _is_api(request) and isinstance(sys.exc_info()[1], OUTAGES):
        outage = ServiceUnavailable()
        response = problem_response(code=outage.code, title=outage.title, status_code=outage.status,
                                    detail=outage.detail)  # fmt: skip
        response["Retry-After"] = str(outage.retry_after)
        return _shaped(request, response)
    if _is_api(request):
        return _shaped(request, problem_response(
            code="internal_error", title="Internal error", status_code=500,
            detail="Something went wrong on our side; the request id identifies it in our logs.",
        ))  # fmt: skip
    return defaults.server_error(request)
