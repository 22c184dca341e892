"""Who is acting, and in which request: bound once per request (or task) and read by the audit service.

Kept in a context variable so that services deep in a call stack can record the request id and client
address of an event without every caller passing them along.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.http import HttpRequest


@dataclass(frozen=True)
class RequestContext:
    """The request (or task) on whose behalf the current code runs."""

    request_id: str
    client_ip: str | None = None
    # Who acts when no user does: a command or a task ("seed_demo", "system").
    actor_repr: str | None = None
    # The Django request, when there is one: its `user` is resolved only when an event is recorded,
    # after the authentication middleware has run.
    request: Any = None


_current: ContextVar[RequestContext | None] = ContextVar("tollgate_request_context", default=None)


def new_request_id() -> str:
    return uuid.uuid4().hex


def current() -> RequestContext | None:
    return _current.get()


def current_request_id() -> str | None:
    context = _current.get()
    return context.request_id if context else None


@contextmanager
def bound(context: RequestContext) -> Iterator[RequestContext]:
    token = _current.set(context)
    try:
        yield context
    finally:
        _current.reset(token)


# Grants of access (roles, permissions, superuser status) are refused outside this context (identity.guard):
# it is entered only by the approval of an access request, `roles_sync`, the `grant_access` bootstrap and
# test factories. Kept here, beside "who is acting", so that `roles_sync` (in this app) can enter it.
_access_change: ContextVar[str | None] = ContextVar("tollgate_access_change", default=None)


@contextmanager
def access_change(*, actor_repr: str) -> Iterator[None]:
    """Allow grants of access inside the block; `actor_repr` says who vouches for them ("cli:grant_access",
    "access_request:42", "roles_sync"). The callers record the audit events."""
    token = _access_change.set(actor_repr)
    try:
        yield
    finally:
        _access_change.reset(token)


def access_change_actor() -> str | None:
    """Who vouches for the access change in progress, or None outside `access_change()`."""
    return _access_change.get()


def client_ip(request: HttpRequest) -> str | None:
    """The caller's address: REMOTE_ADDR, or the address our trusted proxies saw (X-Forwarded-For)."""
    trusted_proxies: int = getattr(settings, "TOLLGATE_TRUSTED_PROXIES", 0)
    if trusted_proxies:
        header = str(request.META.get("HTTP_X_FORWARDED_FOR", ""))
        forwarded = [part.strip() for part in header.split(",") if part.strip()]
        if len(forwarded) >= trusted_proxies:
            return forwarded[-trusted_proxies]
    return str(request.META.get("REMOTE_ADDR", "")) or None
