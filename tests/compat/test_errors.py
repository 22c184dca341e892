"""Every refusal of the Anthropic-compatible endpoint reaches the SDK as its own exception class, in
Anthropic's error shape with Tollgate's code; nothing refused before the call reaches the sandbox."""

from __future__ import annotations

from decimal import Decimal

import anthropic
import httpx2
import pytest

from keys import services as key_services
from tests.gateway.upstream import inject, sandbox_requests
from usage.models import SpendReservation, UsageRecord

pytestmark = pytest.mark.django_db

BODY = {"model": "prompt:support-summary", "max_tokens": 100, "messages": [{"role": "user", "content": "hello"}]}


def _raised(sdk_client, exception, code, **body):
    with pytest.raises(exception) as caught:
        sdk_client.messages.create(**{**BODY, **body})
    error = caught.value.body["error"]
    assert error["code"] == code
    assert caught.value.response.headers["request-id"]
    assert caught.value.body["type"] == "error"
    return caught.value


def test_a_bad_token_is_an_authentication_error(world, sdk):
    error = _raised(sdk(token="tg_prd_notatoken"), anthropic.AuthenticationError, "authentication_failed")
    assert error.body["error"]["type"] == "authentication_error"
    assert sandbox_requests(world) == []


def test_a_prompt_the_client_may_not_run_is_a_permission_error(world, sdk, custodian):
    key_services.api_client_update(
        actor=custodian, client=world["client"], reason="narrow", all_prompts=False, allowed_prompts=["other"]
    )
    error = _raised(sdk(), anthropic.PermissionDeniedError, "permission_denied")
    assert error.body["error"]["type"] == "permission_error"


def test_an_unknown_prompt_is_not_found(world, sdk):
    error = _raised(sdk(), anthropic.NotFoundError, "prompt_not_found", model="prompt:nope")
    assert error.body["error"]["type"] == "not_found_error"


def test_an_unknown_path_is_not_found_in_anthropic_shape(world, wsgi):
    with httpx2.Client(transport=httpx2.WSGITransport(app=wsgi), base_url="http://testserver") as http:
        response = http.get("/anthropic/v1/nothing-here")
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found_error"


def test_a_body_too_large_is_refused_before_it_is_read(world, sdk, settings):
    settings.TOLLGATE_MAX_REQUEST_BYTES = 1000
    error = _raised(sdk(), anthropic.ContentTooLargeError, "request_too_large",
                    messages=[{"role": "user", "content": "x" * 2000}])  # fmt: skip
    assert error.body["error"]["type"] == "request_too_large"
    assert sandbox_requests(world) == []


def test_over_the_rate_limit_is_a_rate_limit_error_with_retry_after(world, sdk, custodian, settings, one_rate_window):
    key_services.api_client_update(actor=custodian, client=world["client"], reason="slow", rate_limit_per_minute=1)
    client = sdk()
    client.messages.create(**BODY)
    error = _raised(client, anthropic.RateLimitError, "rate_limited")
    assert int(error.response.headers["retry-after"]) >= 1
    assert len(sandbox_requests(world)) == 1


def test_a_cap_refusal_is_a_billing_error_and_makes_no_upstream_call(world, sdk, custodian):
    key_services.provider_key_update(actor=custodian, key=world["key"], reason="tiny", monthly_cap_usd=Decimal("0.00"))

    error = _raised(sdk(), anthropic.PaymentRequiredError, "spend_cap_exceeded")

    assert error.body["error"]["type"] == "billing_error"
    assert sandbox_requests(world) == []
    assert UsageRecord.objects.get().outcome == "cap_exceeded"
    assert UsageRecord.objects.get().endpoint == "anthropic"


@pytest.mark.parametrize(
    ("fault", "exception", "error_type", "code", "outcome"),
    [
        ({"status": 529, "count": 3}, anthropic.ServiceUnavailableError, "overloaded_error", "upstream_overloaded",
         "overloaded"),
        ({"status": 500, "count": 3}, anthropic.InternalServerError, "api_error", "upstream_error", "server_error"),
        ({"status": 429, "count": 3}, anthropic.ServiceUnavailableError, "overloaded_error", "upstream_rate_limited",
         "rate_limited"),
    ],
)  # fmt: skip
def test_upstream_trouble_is_answered_in_anthropic_shape_with_a_ledger_row(
    world, sdk, fault, exception, error_type, code, outcome
):
    inject(world, **fault)

    error = _raised(sdk(), exception, code)

    assert error.body["error"]["type"] == error_type
    assert UsageRecord.objects.get().outcome == outcome
    assert SpendReservation.objects.get().status == "released"


def test_an_upstream_timeout_is_a_gateway_timeout(world, sdk, settings):
    settings.TOLLGATE_UPSTREAM_TIMEOUT = 0.5
    settings.TOLLGATE_UPSTREAM_MAX_RETRIES = 0
    inject(world, status="timeout", seconds=3)

    error = _raised(sdk(), anthropic.GatewayTimeoutError, "upstream_timeout")

    assert error.body["error"]["type"] == "timeout_error"
    assert UsageRecord.objects.get().outcome == "timeout"


def test_an_error_mid_stream_is_an_anthropic_error_event_after_the_call_was_recorded(world, sdk):
    inject(world, status="stream_error")

    with pytest.raises(anthropic.APIStatusError) as caught, sdk().messages.stream(**BODY) as stream:
        list(stream.text_stream)

    assert caught.value.body["error"]["type"] in ("api_error", "overloaded_error")
    assert UsageRecord.objects.get().outcome != "ok"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"thinking": {"type": "enabled", "budget_tokens": 1024}}, "unsupported_field"),
        ({"tools": [{"name": "x", "input_schema": {"type": "object"}}]}, "unsupported_field"),
        ({"max_tokens": 0}, "invalid_request"),
        ({"messages": []}, "invalid_request"),
        ({"messages": [{"role": "system", "content": "x"}]}, "invalid_request"),
        ({"messages": [{"role": "user", "content": "a\x00b"}]}, "invalid_request"),
    ],
)
def test_bad_bodies_are_refused_before_anything_is_reserved_or_sent(world, sdk, body, code):
    _raised(sdk(), anthropic.BadRequestError, code, **body)
    assert sandbox_requests(world) == []
    assert not SpendReservation.objects.exists()
    assert not UsageRecord.objects.exists()


def test_a_body_anthropic_refuses_is_a_bad_request_with_its_message_and_a_ledger_row(world, sdk, custodian):
    client, _ = key_services.api_client_create(
        actor=custodian, name="big", environment="production", owner=custodian, freeform=True,
        freeform_models=["claude-haiku-4-5"], freeform_max_tokens=128_000,
    )  # fmt: skip

    error = _raised(sdk(client, timeout=60), anthropic.BadRequestError, "upstream_refused", model="claude-haiku-4-5",
                    max_tokens=100_000)  # fmt: skip

    assert "max_tokens" in error.body["error"]["message"]
    assert UsageRecord.objects.get().outcome == "client_error"
    assert SpendReservation.objects.get().status == "released"
