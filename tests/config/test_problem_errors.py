"""Every API error becomes application/problem+json with a stable code (docs/contract.md §6)."""

from __future__ import annotations

from rest_framework import exceptions

from config.exceptions import problem_exception_handler
from core.context import RequestContext, bound
from core.errors import DomainError
from core.problems import PROBLEM_CONTENT_TYPE


class SpendCapExceeded(DomainError):
    code = "spend_cap_exceeded"
    title = "Spend cap exceeded"
    status = 402


def test_a_domain_error_keeps_its_code_status_and_extra_fields():
    with bound(RequestContext(request_id="req-1")):
        response = problem_exception_handler(SpendCapExceeded("The monthly cap is reached.", extra={"cap": "key"}), {})

    assert response.status_code == 402
    assert response.content_type == PROBLEM_CONTENT_TYPE
    assert response.data == {
        "type": "/api/docs/errors#spend_cap_exceeded",
        "title": "Spend cap exceeded",
        "status": 402,
        "detail": "The monthly cap is reached.",
        "code": "spend_cap_exceeded",
        "request_id": "req-1",
        "cap": "key",
    }


def test_validation_errors_list_each_field():
    response = problem_exception_handler(exceptions.ValidationError({"variables": ["This field is required."]}), {})

    assert response.status_code == 400
    assert response.data["code"] == "invalid_request"
    assert response.data["errors"] == {"variables": ["This field is required."]}


def test_authentication_and_throttling_get_their_codes():
    unauthenticated = problem_exception_handler(exceptions.AuthenticationFailed(), {})
    throttled = problem_exception_handler(exceptions.Throttled(wait=7), {})

    assert (unauthenticated.status_code, unauthenticated.data["code"]) == (401, "authentication_failed")
    assert (throttled.status_code, throttled.data["code"], throttled["Retry-After"]) == (429, "rate_limited", "7")


def test_an_unexpected_error_answers_without_its_message_or_traceback(caplog):
    response = problem_exception_handler(RuntimeError("secret-ish internals canary-3b1f"), {})

    assert response.status_code == 500
    assert response.data["code"] == "internal_error"
    assert "canary-3b1f" not in str(response.data)
    assert "Traceback" not in str(response.data)
