"""Sign-in backends: the lockout check (django-axes), then Django's own, which may re-hash a password at
sign-in (the holder's own, proven by the sign-in itself) although identity.guard refuses other writes of a
privileged account's password."""

from __future__ import annotations

import logging
from typing import Any

import jwt
import requests
from axes.backends import AxesStandaloneBackend
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend as DjangoModelBackend
from django.core.exceptions import ImproperlyConfigured, PermissionDenied, SuspiciousOperation
from django.http import HttpRequest
from mozilla_django_oidc.auth import OIDCAuthenticationBackend

from audit.services import audit_event_record
from core.context import access_change
from core.errors import SingleSignOnRefused
from identity import sso
from identity.oidc import oidc_setting

logger = logging.getLogger(__name__)


def password_sign_in_allowed(username: str | None) -> bool:
    """Whether a password sign-in may be tried for `username`: always, unless TOLLGATE_PASSWORD_SIGNIN is
    off, when only the break-glass accounts (TOLLGATE_BREAK_GLASS_USERS) may."""
    return bool(settings.TOLLGATE_PASSWORD_SIGNIN) or (username or "") in settings.TOLLGATE_BREAK_GLASS_USERS


class ModelBackend(DjangoModelBackend):
    def authenticate(
        self, request: HttpRequest | None, username: str | None = None, password: str | None = None, **kwargs: Any
    ) -> Any:
        if username is not None and not password_sign_in_allowed(username):
            # Refused before the password is checked, alike for every name: nothing is learnt about it.
            # django-axes still counts the failure, so one source appends a bounded number of these.
            name = str(username)[:150]
            if request is not None:
                request.tollgate_password_refused = True  # type: ignore[attr-defined]
            audit_event_record(
                action="auth.password_refused",
                actor_repr="anonymous",
                object_type="auth.user",
                object_repr=name,
                changes={"username": name},
                reason="password sign-in is off (TOLLGATE_PASSWORD_SIGNIN); sign in with single sign-on",
            )
            return None
        with access_change(actor_repr="sign-in"):
            return super().authenticate(request, username=username, password=password, **kwargs)


class LockoutBackend(AxesStandaloneBackend):  # type: ignore[misc]
    """django-axes's check, first among the backends: a locked-out source is refused before any password is
    checked. Sign-ins without a request (the test client's `login()`, code on the host) are not
    throttled: nobody reaches them over the network."""

    def authenticate(self, request: HttpRequest | None, *args: Any, **kwargs: Any) -> Any:
        if request is None:
            return None
        # Whether the source was locked out before this attempt, for identity.signin (which must not append
        # to the audit trail for it); known here, before any signal receiver counts the attempt.
        request.tollgate_locked_before = False  # type: ignore[attr-defined]
        try:
            return super().authenticate(request, *args, **kwargs)
        except PermissionDenied:
            request.tollgate_locked_before = True  # type: ignore[attr-defined]
            raise


class OidcBackend(OIDCAuthenticationBackend):  # type: ignore[misc]
    """Single sign-on (identity.sso): mozilla-django-oidc's authorization-code flow — state, nonce and PKCE
    checked, the ID token's RS256 signature checked against the provider's JWKS — plus the checks it leaves
    to its users: the token's issuer and audience, and that the user info describes the same subject. The
    account is found by (issuer, sub) only. Inert unless single sign-on is on and the request is the
    provider's callback."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # The provider's settings (and its discovery document) are read when a callback arrives, not for
        # every password sign-in, which also instantiates each backend.
        self.UserModel = get_user_model()

    @staticmethod
    def get_settings(attr: str, *args: Any) -> Any:
        return oidc_setting(attr, *args)

    def authenticate(self, request: HttpRequest | None, **kwargs: Any) -> Any:
        if request is None or not sso.sso_enabled() or "nonce" not in kwargs or "username" in kwargs:
            return None
        try:
            super().__init__()
            return super().authenticate(request, **kwargs)
        except (requests.RequestException, ValueError, ImproperlyConfigured) as exc:
            # The provider unreachable, or refusing the code (expired, replayed, another client's): no sign-in.
            # Not in the audit trail: anyone can send a made-up code.
            logger.warning("single sign-on failed at the provider: %s", exc.__class__.__name__)
            request.tollgate_sso_refused = "The identity provider did not confirm the sign-in."  # type: ignore[attr-defined]
            return None

    def verify_token(self, token: str, **kwargs: Any) -> dict[str, Any]:
        payload: dict[str, Any] = super().verify_token(token, **kwargs)
        if "nonce" not in kwargs:
            return payload  # a user info answer sent as a JWT (no nonce, no audience); an ID token has one
        if str(payload.get("iss", "")).rstrip("/") != sso.sso_issuer():
            raise SuspiciousOperation("The ID token was issued by another issuer.")
        audience = payload.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if self.OIDC_RP_CLIENT_ID not in audiences:
            raise SuspiciousOperation("The ID token is meant for another client.")
        if "exp" not in payload:
            raise SuspiciousOperation("The ID token has no expiry.")
        return payload

    def retrieve_matching_jwk(self, token: str) -> Any:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise SuspiciousOperation("The ID token is not a signed JWT.") from None
        if header.get("kid") is not None:
            return super().retrieve_matching_jwk(token)
        # "kid" is optional (RFC 7515): without it, the provider's one signing key for the algorithm.
        response = requests.get(
            self.OIDC_OP_JWKS_ENDPOINT, timeout=self.get_settings("OIDC_TIMEOUT", None), allow_redirects=False
        )
        response.raise_for_status()
        keys = [
            key
            for key in response.json().get("keys", [])
            if isinstance(key, dict)
            and key.get("kty") == "RSA"
            and key.get("use", "sig") == "sig"
            and key.get("alg", self.OIDC_RP_SIGN_ALGO) == self.OIDC_RP_SIGN_ALGO
        ]
        if len(keys) != 1:
            raise SuspiciousOperation("The ID token names no key and the provider has not exactly one.")
        return jwt.PyJWK(keys[0])

    def _verify_jws(self, payload: Any, key: Any) -> Any:
        try:
            return super()._verify_jws(payload, key)
        except jwt.InvalidTokenError as exc:  # expired, not yet valid: mozilla-django-oidc lets these through
            raise SuspiciousOperation(f"ID token refused: {exc.__class__.__name__}.") from None

    def get_userinfo(self, access_token: str, id_token: str, payload: dict[str, Any]) -> dict[str, Any]:
        claims = dict(payload)
        if self.OIDC_OP_USER_ENDPOINT:
            userinfo = super().get_userinfo(access_token, id_token, payload)
            if not isinstance(userinfo, dict) or userinfo.get("sub") != payload.get("sub"):
                raise SuspiciousOperation("The user info describes another subject than the ID token.")
            # The signed ID token's claims win over the user info's.
            claims = {**userinfo, **payload}
        return claims

    def get_or_create_user(self, access_token: str, id_token: str, payload: dict[str, Any]) -> Any:
        claims = self.get_userinfo(access_token, id_token, payload)
        try:
            return sso.sso_sign_in(claims=claims)
        except SingleSignOnRefused as exc:
            self.request.tollgate_sso_refused = exc.detail
            # The provider vouched for this person: not a guess, not counted towards a lockout (identity.signin).
            self.request.tollgate_sso_vouched = True
            return None
