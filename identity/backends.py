"""The sign-in backend: Django's, letting it re-hash a password at sign-in (the holder's own, proven by the
sign-in itself) although the account holds a role (identity.guard refuses other password writes)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.backends import ModelBackend as DjangoModelBackend
from django.http import HttpRequest

from audit.context import access_change


class ModelBackend(DjangoModelBackend):
    def authenticate(
        self, request: HttpRequest | None, username: str | None = None, password: str | None = None, **kwargs: Any
    ) -> Any:
        with access_change(actor_repr="sign-in"):
            return super().authenticate(request, username=username, password=password, **kwargs)
