"""The session middlewares (docs/admin.md, Sessions): django-qsessions' with the address we trust, and the
check of each signed-in request against the session limits."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone
from qsessions.middleware import SessionMiddleware as QSessionMiddleware

from core.context import client_ip
from identity.sessions import SessionEnd, session_expire, session_limit_reached

MESSAGES = {
    SessionEnd.IDLE: "You were signed out after {minutes} minutes without activity. Please sign in again.",
    SessionEnd.LIFETIME: "Your session reached its limit of {hours} hours. Please sign in again.",
}


class SessionMiddleware(QSessionMiddleware):  # type: ignore[misc]
    """django-qsessions' middleware, but a session records the client's address as config.middleware
    resolves it (X-Forwarded-For from TOLLGATE_TRUSTED_PROXIES), not the last proxy's."""

    def process_request(self, request: HttpRequest) -> None:
        request.session = self.SessionStore(
            ip=client_ip(request),
            user_agent=request.headers.get("User-Agent", ""),
            session_key=request.COOKIES.get(settings.SESSION_COOKIE_NAME),
        )


class SessionLimitsMiddleware:
    """Ends a signed-in session past its idle timeout or its lifetime: signs it out and sends the person to
    the sign-in page with a message saying why. Requests without a session cookie (the API's) cost nothing."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if settings.SESSION_COOKIE_NAME in request.COOKIES and request.user.is_authenticated:
            limit = session_limit_reached(session=request.session, now=timezone.now())
            if limit is not None:
                return self._end(request, limit)
        return self.get_response(request)

    def _end(self, request: HttpRequest, limit: str) -> HttpResponse:
        user, key = request.user, request.session.session_key or ""
        session_expire(user=user, session_key=key, cause=limit)  # type: ignore[arg-type]
        logout(request)
        text = MESSAGES[limit].format(
            minutes=settings.TOLLGATE_SESSION_IDLE_MINUTES, hours=settings.TOLLGATE_SESSION_MAX_HOURS
        )
        messages.warning(request, text)
        login = reverse("admin:login")
        if request.method == "GET":
            login += "?" + urlencode({"next": request.get_full_path()})
        return HttpResponseRedirect(login)
