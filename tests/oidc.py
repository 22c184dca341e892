"""A real OpenID Connect provider for the single sign-on tests: oidc-provider-mock's server (discovery,
authorization, token, user info and JWKS endpoints, RS256-signed ID tokens) on a thread, on a free port.
mozilla-django-oidc talks to it over HTTP exactly as it would to Entra ID or Keycloak. The test chooses
each person's subject and claims (PUT /users/<sub>)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from django.test import override_settings

from core.roles import Role

CLIENT_ID = "tollgate-test"
CLIENT_SECRET = "test-only-oidc-client-secret"
ROLE_MAP = {
    "tollgate-authors": Role.PROMPT_AUTHORS.value,
    "tollgate-approvers": Role.PROMPT_APPROVERS.value,
    "tollgate-auditors": [Role.AUDITORS.value],
}


@dataclass
class Provider:
    issuer: str

    def person_set(self, sub: str, **claims: Any) -> None:
        """The claims the provider sends for `sub` from now on."""
        response = httpx.put(f"{self.issuer}/users/{sub}", json=claims, timeout=10)
        assert response.status_code == 204, response.text

    def authorize(self, authorization_url: str, sub: str) -> str:
        """What the person's browser does at the provider: approve as `sub`. Returns the callback URL the
        provider redirects to (with the code and the state)."""
        response = httpx.post(authorization_url, data={"sub": sub}, timeout=10)
        assert response.status_code == 302, response.text
        return str(response.headers["location"])

    def settings(self, **overrides: Any) -> Any:
        values: dict[str, Any] = {
            "TOLLGATE_OIDC_ISSUER": self.issuer,
            "TOLLGATE_OIDC_CLIENT_ID": CLIENT_ID,
            "TOLLGATE_OIDC_CLIENT_SECRET": CLIENT_SECRET,
            "TOLLGATE_OIDC_ROLE_MAP": ROLE_MAP,
        }
        values.update(overrides)
        return override_settings(**values)


@contextmanager
def provider_running() -> Iterator[Provider]:
    from oidc_provider_mock import run_server_in_thread

    # Authlib refuses plain HTTP unless told: the provider is on the loopback interface for the test only.
    previous = os.environ.get("AUTHLIB_INSECURE_TRANSPORT")
    os.environ["AUTHLIB_INSECURE_TRANSPORT"] = "1"
    try:
        with run_server_in_thread(require_nonce=True) as server:
            yield Provider(issuer=f"http://localhost:{server.server_port}")
    finally:
        if previous is None:
            os.environ.pop("AUTHLIB_INSECURE_TRANSPORT", None)
        else:
            os.environ["AUTHLIB_INSECURE_TRANSPORT"] = previous


def callback_path(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def query_of(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}
