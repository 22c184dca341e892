"""The one authentication choke point of the REST API: bearer tokens of API clients, and the signatures of
the clients that require signed requests."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from core.context import client_ip
from core.errors import AuthenticationFailed, DomainError, SignatureRefused
from keys.models import ApiClient, ApiToken
from keys.ratelimit import counts_toward_rate_limit
from keys.services import api_client_refusal, api_token_authenticate, request_signature_refusal


class SignatureNotAccepted(exceptions.AuthenticationFailed):
    """A signature refusal as DRF's authentication failure (so the request ends unauthenticated, with
    `WWW-Authenticate`), answered with the refusal's own code (config.exceptions)."""

    def __init__(self, refusal: SignatureRefused) -> None:
        super().__init__(refusal.detail, code=refusal.code)
        self.domain_error = refusal


class ApiTokenAuthentication(BaseAuthentication):
    """`Authorization: Bearer tg_<env>_…`; request.user becomes the ApiClient, request.auth the token.

    The token and its client may come from the hot cache, which every change of them invalidates: a
    revoked token or a deactivated client is refused on its very next request (docs/contract.md §12).
    On a view that counts toward the client's rate limit, the request is counted here, in the same Redis
    round trip that checks the cache. For a client that requires signed requests, the signature is checked
    here too (signature_refusal), before any view or parser reads the body; a refused one is not counted.
    """

    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[ApiClient, ApiToken] | None:
        raw = self.presented_token(request)
        if raw is None:
            return None
        view = request.parser_context.get("view")

        def may_count(client: ApiClient) -> bool:
            return client_access_refusal(request, view, client) is None and signature_refusal(request, client) is None

        try:
            token = api_token_authenticate(
                raw, count_rate=may_count if counts_toward_rate_limit(request, view) else None
            )
        except AuthenticationFailed as exc:
            raise exceptions.AuthenticationFailed(exc.detail, code=exc.reason) from None
        if refusal := signature_refusal(request, token.client):
            raise SignatureNotAccepted(refusal)
        return token.client, token

    def presented_token(self, request: Request) -> str | None:
        """The token the request presents, or None when it presents none."""
        header = get_authorization_header(request).split()
        if not header or header[0].decode(errors="replace").lower() != self.keyword.lower():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed(
                "The Authorization header must be 'Bearer <token>'.", code="malformed"
            )
        return header[1].decode(errors="replace")

    def authenticate_header(self, request: Request) -> str:
        return f'{self.keyword} realm="tollgate"'


class AnthropicKeyAuthentication(ApiTokenAuthentication):
    """The Anthropic-compatible endpoint: the token as the SDK sends an API key (`x-api-key`), or as
    `Authorization: Bearer` (the SDK's `auth_token`). Both at once must be the same token."""

    def presented_token(self, request: Request) -> str | None:
        bearer = super().presented_token(request)
        api_key = request.headers.get("x-api-key")
        if api_key is not None and bearer is not None and api_key != bearer:
            raise exceptions.AuthenticationFailed(
                "x-api-key and Authorization name different tokens.", code="malformed"
            )
        return api_key if api_key is not None else bearer

    def authenticate_header(self, request: Request) -> str:
        return 'x-api-key realm="tollgate"'


def signature_refusal(request: Request, client: ApiClient) -> SignatureRefused | None:
    """Why this request is refused for its signature (keys.services.request_signature_refusal), or None.

    Checked once per request and client row: an accepted signature is remembered as used, so the rate
    limit's look (with the cached client) and authentication's (with the token's) must share one answer.
    Runs in authentication, before a view or a parser reads the body: the body hashed is the bytes Django
    received (HttpRequest.body, which DRF's parsers then read again from memory).
    """
    http = request._request
    checked: dict[tuple[object, ...], SignatureRefused | None] = http.__dict__.setdefault("_tollgate_signatures", {})
    key = (client.uid, client.signature_required, client.signing_secret_ciphertext)
    if key not in checked:
        checked[key] = request_signature_refusal(
            client=client,
            method=http.method or "",
            path=http.path,
            query=str(http.META.get("QUERY_STRING", "")),
            headers=http.headers,
            body=lambda: http.body,
        )
    return checked[key]


def client_access_refusal(request: Request, view: Any, client: ApiClient) -> DomainError | None:
    """Why `client` may not call `view` (its `required_scope`) from this request's address, or None."""
    return api_client_refusal(client, scope=getattr(view, "required_scope", None), address=client_ip(request))


class ApiClientAccess(BasePermission):
    """The API's permission (configured by default): an authenticated API client whose scopes include the
    view's `required_scope` (a view without one is refused to every client) and, when it has networks,
    calling from one of them (the address as core.context.client_ip determines it). Runs on every request,
    against the token's client as authentication found it (from the hot cache too): no query of its own."""

    def has_permission(self, request: Request, view: Any) -> bool:
        client = request.user
        if not isinstance(client, ApiClient):
            return False
        if refusal := client_access_refusal(request, view, client):
            raise refusal
        return True


def request_client(request: Request) -> ApiClient:
    """The API client a request was authenticated as: every API view requires one (ApiClientAccess), so
    anything else is refused as unauthenticated rather than trusted."""
    client = request.user
    if not isinstance(client, ApiClient):
        raise exceptions.NotAuthenticated()
    return client


class ApiTokenScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    """Describes the bearer token in the OpenAPI schema."""

    target_class = "keys.authentication.ApiTokenAuthentication"
    name = "ApiToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "bearerFormat": "tg_<env>_<random><checksum>"}
