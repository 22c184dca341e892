"""mozilla-django-oidc's settings, answered from Tollgate's (docs/configuration.md, Single sign-on): the
library asks for OIDC_* names; the endpoints come from the provider's discovery document unless set."""

from __future__ import annotations

from typing import Any

from mozilla_django_oidc.utils import import_from_settings

from identity import sso

_ENDPOINTS = {
    "OIDC_OP_AUTHORIZATION_ENDPOINT": "authorization_endpoint",
    "OIDC_OP_TOKEN_ENDPOINT": "token_endpoint",
    "OIDC_OP_USER_ENDPOINT": "userinfo_endpoint",
    "OIDC_OP_JWKS_ENDPOINT": "jwks_uri",
}


def oidc_setting(attr: str, *default: Any) -> Any:
    from django.conf import settings

    if attr in _ENDPOINTS:
        return sso.sso_endpoint(_ENDPOINTS[attr]) or None
    fixed: dict[str, Any] = {
        "OIDC_RP_CLIENT_ID": settings.TOLLGATE_OIDC_CLIENT_ID,
        "OIDC_RP_CLIENT_SECRET": settings.TOLLGATE_OIDC_CLIENT_SECRET,
        # Only RS256, checked against the provider's JWKS: never the client secret (HS256), never "none".
        "OIDC_RP_SIGN_ALGO": "RS256",
        "OIDC_RP_IDP_SIGN_KEY": None,
        "OIDC_ALLOW_UNSECURED_JWT": False,
        "OIDC_RP_SCOPES": settings.TOLLGATE_OIDC_SCOPES,
        "OIDC_USE_NONCE": True,
        "OIDC_USE_PKCE": True,
        "OIDC_VERIFY_SSL": True,
        "OIDC_VERIFY_KID": True,
        "OIDC_TIMEOUT": settings.TOLLGATE_OIDC_TIMEOUT,
        "OIDC_CREATE_USER": True,
        "OIDC_STORE_ACCESS_TOKEN": False,
        "OIDC_STORE_ID_TOKEN": False,
        "OIDC_AUTHENTICATION_CALLBACK_URL": "oidc_authentication_callback",
        "LOGIN_REDIRECT_URL": "admin:index",
    }
    if attr in fixed:
        return fixed[attr]
    return import_from_settings(attr, *default)
