"""Sign-in backends: the lockout check (django-axes), then Django's own, which may re-hash a password at
sign-in (the holder's own, proven by the sign-in itself) although identity.guard refuses other writes of a
privileged account's password."""

from __future__ import annotations

from typing import Any

from axes.backends import AxesStandaloneBackend
from django.contrib.auth.backends import ModelBackend as DjangoModelBackend
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest

from core.context import access_change


class ModelBackend(DjangoModelBackend):
    def authenticate(
        self, request: HttpRequest | None, username: str | None = None, password: str | None = None, **kwargs: Any
    ) -> Any:
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
