"""The gate of two-factor authentication (docs/admin.md, Two-factor authentication).

A signed-in session that must be verified with a second factor (core.mfa: its roles require it, or the
person enrolled) and is not gets nothing but the sign-in and sign-out pages and the verification page (or,
with no device yet, the enrolment page). It fails closed: every other path under the admin, whatever the
method, answers a redirect to verification or enrolment, and outside the admin the request goes on as
anonymous, so that no other view (the API's documentation, a future page) sees the person. The services
check the session again for every governed change (core.governance.require_permission).
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlencode

from django.contrib.auth.models import AnonymousUser
from django.http import HttpRequest, HttpResponseBase, HttpResponseRedirect
from django.urls import reverse

from core.mfa import mfa_enrolled, mfa_must_verify, session_verified


def gate_redirect(request: HttpRequest) -> HttpResponseBase | None:
    """Where an unverified session that must verify is sent from this request, or None to let it through."""
    user = request.user
    admin_root = reverse("admin:index")
    if not request.path.startswith(admin_root):
        return None
    open_paths = {reverse("admin:login"), reverse("admin:logout"), reverse("mfa-verify")}
    enrolled = mfa_enrolled(user)
    if not enrolled:
        open_paths.add(reverse("mfa-enrol"))
    if request.path in open_paths:
        return None
    if not enrolled:
        return HttpResponseRedirect(reverse("mfa-enrol"))
    query = f"?{urlencode({'next': request.path})}" if request.method == "GET" else ""
    return HttpResponseRedirect(reverse("mfa-verify") + query)


class MfaGateMiddleware:
    """After django-otp's middleware, which tells whether a device verified the session."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        user = request.user
        if user.is_authenticated and not session_verified(user) and mfa_must_verify(user):
            if not request.path.startswith(reverse("admin:index")):
                request.user = AnonymousUser()
            elif (redirect := gate_redirect(request)) is not None:
                return redirect
        return self.get_response(request)
