"""API clients' scopes, networks and the longest lifetime of their tokens, seen through the API."""

from __future__ import annotations

import ipaddress
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from rest_framework.response import Response
from rest_framework.test import APIClient as HttpClient
from rest_framework.test import APIRequestFactory
from rest_framework.views import APIView

from audit.models import AuditEvent
from core.errors import KeyOperationRefused
from core.hotcache import generation_bump
from core.scopes import Scope
from keys import services
from keys.authentication import ApiClientAccess
from keys.models import ApiClient, ApiToken, all_scopes, networks_normalized

pytestmark = pytest.mark.django_db

RUN_BODY = {"variables": {"ticket": "The export button does nothing.", "customer_email": "ana@example.com"}}
COUNT = {"model": "prompt:support-summary", "messages": [{"role": "user", "content": "Hi"}]}
MESSAGE = {**COUNT, "max_tokens": 64}

# (scope, method, path, body, the status an allowed call answers)
ENDPOINTS = [
    (Scope.RUN, "get", "/api/v1/prompts", None, 200),
    (Scope.RUN, "get", "/api/v1/prompts/support-summary", None, 200),
    (Scope.RUN, "post", "/api/v1/prompts/support-summary/run", RUN_BODY, 200),
    (Scope.RUN, "get", "/api/v1/runs/run_unknown", None, 404),
    (Scope.JOBS, "post", "/api/v1/prompts/support-summary/jobs", RUN_BODY, 202),
    (Scope.JOBS, "get", "/api/v1/jobs/job_unknown", None, 404),
    (Scope.BATCHES, "get", "/api/v1/batches/batch_unknown", None, 404),
    (Scope.BATCHES, "post", "/api/v1/batches/batch_unknown/cancel", None, 404),
    (Scope.BATCHES, "get", "/api/v1/batches/batch_unknown/results", None, 404),
    (Scope.USAGE_READ, "get", "/api/v1/usage", None, 200),
    (
        Scope.USAGE_READ,
        "post",
        "/api/v1/cost/estimate",
        {"model": "claude-sonnet-4-5", "input_tokens": 10, "output_tokens": 10},
        200,
    ),
    (Scope.ANTHROPIC, "get", "/anthropic/v1/models", None, 200),
    (Scope.ANTHROPIC, "post", "/anthropic/v1/messages", MESSAGE, 200),
    (Scope.ANTHROPIC, "post", "/anthropic/v1/messages/count_tokens", COUNT, 200),
    (Scope.ANTHROPIC, "get", "/anthropic/v1/messages/batches", None, 200),
    (Scope.ANTHROPIC, "get", "/anthropic/v1/messages/batches/msgbatch_unknown", None, 404),
]
# Under /api/ and /anthropic/, the only views that are not an API client's: the schema and docs (their own
# access rule, docs/api.md) and the problem-JSON 404 for unknown paths.
PUBLIC = {"api-schema", "api-docs", "api-not-found", "anthropic-not-found"}


def client_with(world, custodian, **settings):
    return services.api_client_update(actor=custodian, client=world["client"], reason="Narrow the client", **settings)


def call(http, method, path, body=None, **extra):
    return (
        getattr(http, method)(path, body, format="json", **extra)
        if body is not None
        else getattr(http, method)(path, **extra)
    )


def code_of(response):
    body = response.json()
    return body["error"]["code"] if "error" in body else body["code"]


@pytest.mark.parametrize(("scope", "method", "path", "body", "allowed_status"), ENDPOINTS)
def test_each_endpoint_needs_its_scope(world, custodian, scope, method, path, body, allowed_status):
    client_with(world, custodian, scopes=[scope])
    assert call(world["http"], method, path, body).status_code == allowed_status

    client_with(world, custodian, scopes=[other for other in Scope.values if other != scope])
    refused = call(world["http"], method, path, body)

    assert refused.status_code == 403
    assert code_of(refused) == "scope_required"
    if path.startswith("/anthropic/"):  # in Anthropic's shape, as every error there
        assert refused.json()["error"]["type"] == "permission_error"
    else:
        assert refused["Content-Type"] == "application/problem+json"
        assert refused.json()["scope"] == scope


def test_clients_have_every_scope_and_no_networks_unless_told(custodian):
    client, _ = services.api_client_create(actor=custodian, name="new", environment="staging", owner=custodian)

    assert client.scopes == all_scopes() == [scope.value for scope in Scope]
    assert client.networks == []


def _routes(resolver: URLResolver, prefix: str = ""):
    for pattern in resolver.url_patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            yield from _routes(pattern, route)
        else:
            assert isinstance(pattern, URLPattern)
            yield route, pattern


def test_every_api_view_declares_a_scope():
    routes = [
        (route, p) for route, p in _routes(get_resolver()) if route.lstrip("^").startswith(("api/", "anthropic/"))
    ]
    assert len(routes) > 20

    for route, pattern in routes:
        if pattern.name in PUBLIC:
            continue
        view = getattr(pattern.callback, "cls", None)
        assert view is not None, route
        assert issubclass(view, APIView), route
        assert view.required_scope in Scope.values, route
        assert ApiClientAccess in view.permission_classes, route


def test_a_view_that_declares_no_scope_is_refused(world):
    class Undeclared(APIView):
        def get(self, request):
            return Response({})

    _, token = services.api_token_issue(actor=world["client"].owner, client=world["client"], label="x")
    request = APIRequestFactory().get("/api/v1/undeclared", HTTP_AUTHORIZATION=f"Bearer {token}")

    response = Undeclared.as_view()(request)

    assert response.status_code == 403
    assert response.data["code"] == "scope_required"


def test_scope_and_network_changes_are_audited_and_seen_by_the_next_request(world, custodian):
    assert world["http"].get("/api/v1/usage").status_code == 200  # the token is in the hot cache now

    client_with(world, custodian, scopes=[Scope.RUN], networks=["10.0.0.0/8"])

    event = AuditEvent.objects.filter(action="api_client.update").latest("pk")
    assert event.changes["scopes"] == [all_scopes(), [Scope.RUN]]
    assert event.changes["networks"] == [[], ["10.0.0.0/8"]]
    assert event.reason == "Narrow the client"
    assert code_of(world["http"].get("/api/v1/usage", REMOTE_ADDR="10.1.1.1")) == "scope_required"
    assert code_of(world["http"].get("/api/v1/prompts", REMOTE_ADDR="192.168.1.1")) == "network_not_allowed"
    assert world["http"].get("/api/v1/prompts", REMOTE_ADDR="10.1.1.1").status_code == 200


def test_networks_and_scopes_are_validated(world, custodian):
    with pytest.raises(ValidationError) as invalid:
        client_with(world, custodian, networks=["10.0.0.0/33", "not a network"])
    assert "networks" in invalid.value.message_dict
    with pytest.raises(ValidationError):  # host bits set: say the network meant
        client_with(world, custodian, networks=["10.0.0.1/8"])
    with pytest.raises(ValidationError) as invalid:
        client_with(world, custodian, scopes=["run", "admin"])
    assert "scopes" in invalid.value.message_dict

    client = client_with(world, custodian, networks=["2001:DB8::/32", "10.0.0.0/8", "10.0.0.0/8"])
    assert client.networks == ["10.0.0.0/8", "2001:db8::/32"]
    event = AuditEvent.objects.filter(action="api_client.update").latest("pk")
    assert event.changes["networks"] == [[], ["10.0.0.0/8", "2001:db8::/32"]]  # as stored


NETWORKS = ["10.1.0.0/16", "2001:db8::/32"]


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("10.1.2.3", True),
        ("10.2.0.1", False),
        ("2001:db8::5", True),
        ("2001:db9::1", False),
        ("::ffff:10.1.2.3", True),  # an IPv4 peer of a dual-stack socket
        ("127.0.0.1", False),
    ],
)
def test_requests_from_outside_the_networks_are_refused(world, custodian, address, allowed):
    client_with(world, custodian, networks=NETWORKS)

    response = world["http"].get("/api/v1/prompts", REMOTE_ADDR=address)

    assert response.status_code == (200 if allowed else 403)
    if not allowed:
        assert response["Content-Type"] == "application/problem+json"
        assert response.json()["code"] == "network_not_allowed"


def test_the_address_a_trusted_proxy_saw_is_the_one_checked(world, custodian, settings):
    client_with(world, custodian, networks=NETWORKS)
    settings.TOLLGATE_TRUSTED_PROXIES = 1
    http = world["http"]

    assert http.get("/api/v1/prompts", REMOTE_ADDR="192.0.2.1", HTTP_X_FORWARDED_FOR="10.1.2.3").status_code == 200
    outside = http.get("/api/v1/prompts", REMOTE_ADDR="10.1.0.1", HTTP_X_FORWARDED_FOR="198.51.100.7")
    assert code_of(outside) == "network_not_allowed"  # the proxy is inside; the caller it saw is not
    # A caller that writes its own X-Forwarded-For gets the proxy's entry appended after it.
    spoofed = http.get("/api/v1/prompts", REMOTE_ADDR="192.0.2.1", HTTP_X_FORWARDED_FOR="10.1.2.3, 198.51.100.7")
    assert code_of(spoofed) == "network_not_allowed"


def test_x_forwarded_for_is_not_trusted_without_trusted_proxies(world, custodian, settings):
    client_with(world, custodian, networks=NETWORKS)
    settings.TOLLGATE_TRUSTED_PROXIES = 0

    response = world["http"].get("/api/v1/prompts", REMOTE_ADDR="198.51.100.7", HTTP_X_FORWARDED_FOR="10.1.2.3")

    assert response.status_code == 403
    assert response.json()["code"] == "network_not_allowed"


def test_the_anthropic_endpoint_refuses_outside_networks_in_anthropics_shape(world, custodian):
    client_with(world, custodian, networks=NETWORKS)
    http = HttpClient()
    _, token = services.api_token_issue(actor=custodian, client=world["client"], label="sdk")
    http.credentials(HTTP_X_API_KEY=token)

    refused = http.get("/anthropic/v1/models", REMOTE_ADDR="198.51.100.7")

    assert refused.status_code == 403
    assert refused.json()["type"] == "error"
    assert refused.json()["error"]["code"] == "network_not_allowed"
    assert http.get("/anthropic/v1/models", REMOTE_ADDR="10.1.9.9").status_code == 200


def test_refused_requests_do_not_use_up_the_clients_rate_limit(world, custodian):
    client_with(world, custodian, networks=NETWORKS, rate_limit_per_minute=1)
    http = world["http"]
    path = "/api/v1/prompts/support-summary/run"

    for _ in range(3):
        refused = http.post(path, RUN_BODY, format="json", REMOTE_ADDR="198.51.100.7")
        assert refused.json()["code"] == "network_not_allowed"

    assert http.post(path, RUN_BODY, format="json", REMOTE_ADDR="10.1.2.3").status_code == 200


# --- the longest lifetime ----------------------------------------------------------------------------


def test_a_token_issued_without_expiry_gets_the_longest_lifetime(world, custodian, settings):
    settings.TOLLGATE_API_TOKEN_MAX_DAYS = 30

    token, _ = services.api_token_issue(actor=custodian, client=world["client"], label="no expiry")

    assert token.expires_at == token.created_at + timedelta(days=30)
    assert ApiToken.objects.get(pk=token.pk).expires_at == token.expires_at


def test_an_expiry_beyond_the_longest_lifetime_is_refused(world, custodian, settings):
    settings.TOLLGATE_API_TOKEN_MAX_DAYS = 30

    with pytest.raises(KeyOperationRefused, match="at most 30 days"):
        services.api_token_issue(
            actor=custodian, client=world["client"], label="too long", expires_at=timezone.now() + timedelta(days=31)
        )
    within, _ = services.api_token_issue(
        actor=custodian, client=world["client"], label="ok", expires_at=timezone.now() + timedelta(days=29)
    )
    assert within.expires_at is not None


def test_a_token_without_expiry_is_refused_once_older_than_the_longest_lifetime(world, custodian, settings):
    settings.TOLLGATE_API_TOKEN_MAX_DAYS = 30
    token, plaintext = services.api_token_issue(actor=custodian, client=world["client"], label="legacy")
    http = HttpClient()
    http.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    # A token issued before tokens had to expire:
    ApiToken.objects.filter(pk=token.pk).update(expires_at=None, created_at=timezone.now() - timedelta(days=29))
    assert http.get("/api/v1/prompts").status_code == 200

    ApiToken.objects.filter(pk=token.pk).update(created_at=timezone.now() - timedelta(days=31))
    generation_bump()  # a plain UPDATE: tell the hot cache, as a governed change would
    refused = http.get("/api/v1/prompts")

    assert refused.status_code == 401
    assert refused.json()["reason"] == "expired"


def test_the_token_page_shows_the_clients_scopes_and_networks(world, custodian, client):
    client_with(world, custodian, scopes=[Scope.RUN, Scope.ANTHROPIC], networks=["10.0.0.0/8"])
    client.force_login(custodian)

    page = client.get(f"/admin/keys/apiclient/{world['client'].pk}/tokens/new/")

    assert page.status_code == 200
    text = page.content.decode()
    assert "run, anthropic" in text
    assert "10.0.0.0/8" in text
    assert "365 days" in text


# --- the network check against ipaddress --------------------------------------------------------------

addresses = st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6))


@st.composite
def networks(draw):
    address = draw(addresses)
    prefix = draw(st.integers(0, address.max_prefixlen))
    return ipaddress.ip_network(f"{address}/{prefix}", strict=False)


@hypothesis_settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(networks(), max_size=5), st.one_of(addresses, st.sampled_from(["", "unknown", "10.0.0.1/8"])))
def test_the_network_check_agrees_with_ipaddress(cidrs, address):
    client = ApiClient(scopes=all_scopes(), networks=networks_normalized([str(n) for n in cidrs]))
    assert {ipaddress.ip_network(n) for n in client.networks} == set(cidrs)

    refusal = services.api_client_refusal(client, scope=Scope.RUN, address=str(address))

    if isinstance(address, str):  # not an address at all
        expected = not cidrs
    else:
        mapped = address.ipv4_mapped if address.version == 6 else None
        expected = not cidrs or any(address in n or (mapped is not None and mapped in n) for n in cidrs)
    assert (refusal is None) == expected
