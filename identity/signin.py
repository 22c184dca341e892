"""Failed sign-ins and lockouts in the audit trail, bounded (docs/admin.md, Sign-in lockout).

django-axes counts every failure. The audit trail records a failure only while its source is not locked
out, and the lockout itself once, so one anonymous source appends at most LIMIT + 1 events per cool-off
(each append takes the chain's head lock). "Locked out" means: before this attempt, as the lockout backend
found (identity.backends), whatever order the receivers run in.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from axes.signals import user_locked_out
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_login_failed
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from audit.services import audit_event_record
from core.context import client_ip


def lockout_source(request: HttpRequest) -> str | None:
    """The address failed sign-ins are counted against (django-axes): the client's, honouring trusted
    proxies; an IPv4-mapped IPv6 address as its IPv4 address; any other IPv6 address as its /64 — one host
    holds a whole /64, and would otherwise get a fresh allowance from each of its addresses."""
    address = client_ip(request)
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network(f"{ip}/64", strict=False).network_address)
    return str(ip)


def _tried_username(credentials: dict[str, Any] | None) -> str:
    # Only the name that was tried: the rest of `credentials` is the password.
    return str((credentials or {}).get(get_user_model().USERNAME_FIELD, ""))[:150]


@receiver(user_login_failed, dispatch_uid="identity_login_failed")
def on_login_failed(sender: Any, credentials: dict[str, Any], request: Any = None, **kwargs: Any) -> None:
    if getattr(request, "tollgate_locked_before", False):
        return  # counted by django-axes (which keeps the source locked), not appended to the chain
    if getattr(request, "tollgate_password_refused", False) or getattr(request, "tollgate_sso_refused", ""):
        return  # the refusal itself is in the trail (identity.backends, identity.sso)
    username = _tried_username(credentials)
    audit_event_record(
        action="auth.login_failed",
        actor_repr="anonymous",
        object_type="auth.user",
        object_repr=username,
        changes={"username": username},
    )


@receiver(user_locked_out, dispatch_uid="identity_locked_out")
def on_locked_out(
    sender: Any, request: Any, username: str | None = None, ip_address: str | None = None, **kw: Any
) -> None:
    # django-axes signals every refused attempt of a locked-out source; the trail records the lockout once.
    if getattr(request, "tollgate_locked_before", False) or getattr(request, "tollgate_lockout_recorded", False):
        return
    request.tollgate_lockout_recorded = True
    name = str(username or "")[:150]
    audit_event_record(
        action="auth.lockout",
        actor_repr="anonymous",
        object_type="auth.user",
        object_repr=name,
        changes={"username": name, "ip_address": ip_address},
        reason="too many failed sign-ins",
    )


def lockout_exempt(request: HttpRequest, credentials: Any = None) -> bool:
    """django-axes's whitelist: a single sign-on the provider vouched for but Tollgate refused (no role
    mapped, a deactivated account) is no guess at a password, and does not count towards a lockout — or
    colleagues without a role behind one address would lock everyone there out."""
    return bool(getattr(request, "tollgate_sso_vouched", False))


def lockout_response(request: HttpRequest, original_response: Any = None, credentials: Any = None) -> HttpResponse:
    """The sign-in page of a locked-out source (429): says so, and for how long."""
    minutes = max(1, round(settings.AXES_COOLOFF_TIME.total_seconds() / 60))
    context = {"username": _tried_username(credentials), "minutes": minutes, "title": "Sign-in locked"}
    response = TemplateResponse(request, "admin/locked_out.html", context, status=429)
    response["Retry-After"] = str(minutes * 60)
    return response.render()
