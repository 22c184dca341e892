"""The API's one authentication choke point, seen from a developer's client."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient as HttpClient

from keys import services
from keys.models import ApiToken
from keys.tokens import token_generate
from prompts import services as prompt_services
from tests.factories import version_content

pytestmark = pytest.mark.django_db


def get(token: str | None, path: str = "/api/v1/prompts"):
    http = HttpClient()
    if token is not None:
        http.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return http.get(path)


def assert_refused(response, reason: str | None):
    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "authentication_failed"
    assert response.json().get("reason") == reason
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_a_live_token_is_let_in_and_its_use_noted(issued):
    token, plaintext = issued

    response = get(plaintext)

    assert response.status_code == 200
    assert ApiToken.objects.get(pk=token.pk).last_used_at is not None


def test_no_token_is_refused():
    assert_refused(get(None), None)


def test_a_bad_checksum_is_refused_before_any_query(issued, django_assert_num_queries):
    _, plaintext = issued
    broken = plaintext[:-1] + ("a" if plaintext[-1] != "a" else "b")

    with django_assert_num_queries(0):
        response = get(broken)

    assert_refused(response, "malformed")


def test_an_unknown_token_is_refused(issued):
    assert_refused(get(token_generate("production")), "unknown")


def test_a_revoked_token_is_refused_on_its_next_request(issued, custodian):
    token, plaintext = issued
    assert get(plaintext).status_code == 200

    services.api_token_revoke(actor=custodian, token=token, reason="leaked in a CI log")

    assert_refused(get(plaintext), "revoked")


def test_an_expired_token_is_refused(custodian, api_client):
    _, plaintext = services.api_token_issue(
        actor=custodian, client=api_client, label="old", expires_at=timezone.now() - timedelta(seconds=1)
    )

    assert_refused(get(plaintext), "expired")


def test_a_deactivated_client_is_refused_at_once(issued, custodian, api_client):
    _, plaintext = issued
    assert get(plaintext).status_code == 200

    services.api_client_set_active(actor=custodian, client=api_client, active=False, reason="offboarded")

    assert_refused(get(plaintext), "client_inactive")


def test_several_tokens_let_a_client_rotate_without_downtime(issued, custodian, api_client):
    old_token, old = issued
    _, new = services.api_token_issue(actor=custodian, client=api_client, label="billing prod (new)")

    assert get(old).status_code == get(new).status_code == 200
    services.api_token_revoke(actor=custodian, token=old_token, reason="rotated")
    assert get(new).status_code == 200


# --- the prompts a client sees --------------------------------------------------------------------------


@pytest.fixture
def released(author, approver):
    prompt = prompt_services.prompt_create(
        actor=author, slug="support-summary", name="Support summary", purpose="x", owner=author
    )
    version = prompt_services.prompt_version_create(
        actor=author, prompt=prompt, content=version_content(), change_summary="v1"
    )
    prompt_services.prompt_version_submit(actor=author, version=version)
    prompt_services.prompt_version_approve(actor=approver, version=version, note="ok")
    for environment in ("development", "staging", "production"):
        prompt_services.prompt_version_release(actor=approver, version=version, environment=environment, reason="x")
    return prompt


def test_a_client_lists_the_prompts_live_in_its_environment(issued, released):
    _, plaintext = issued

    response = get(plaintext)

    assert response.json() == [
        {
            "slug": "support-summary",
            "name": "Support summary",
            "version": 1,
            "model": "claude-sonnet-4-6",
            "variables": [
                {
                    "name": "ticket",
                    "type": "string",
                    "required": True,
                    "max_length": 5000,
                    "sensitive": False,
                    "choices": None,
                },
                {
                    "name": "customer_email",
                    "type": "string",
                    "required": True,
                    "max_length": 200,
                    "sensitive": True,
                    "choices": None,
                },
            ],
        }
    ]


def test_a_client_sees_only_the_prompts_it_may_run(custodian, released):
    client, _ = services.api_client_create(
        actor=custodian, name="other", environment="production", owner=custodian, allowed_prompts=["email-draft"]
    )
    _, plaintext = services.api_token_issue(actor=custodian, client=client, label="x")

    assert get(plaintext).json() == []
    forbidden = get(plaintext, "/api/v1/prompts/support-summary")
    missing = get(plaintext, "/api/v1/prompts/no-such-prompt")
    assert (forbidden.status_code, forbidden.json()["code"]) == (403, "permission_denied")
    assert (missing.status_code, missing.json()["code"]) == (404, "prompt_not_found")
