"""The Sessions pages of the admin (docs/admin.md, Sessions): one's own sessions, and for a superuser another
person's, each with the buttons that end them. Thin: identity.sessions does the work."""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.auth import logout
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse

from identity import sessions


def session_urls(admin_site: admin.AdminSite) -> list[URLPattern]:
    """The pages, under the accounts' admin (before its catch-all)."""
    return [
        path("sessions/", admin_site.admin_view(own_sessions_view), name="auth_user_sessions"),
        path("<int:user_id>/sessions/", admin_site.admin_view(user_sessions_view), name="auth_user_sessions_of"),
    ]


def _user(request: HttpRequest) -> User:
    return request.user  # type: ignore[return-value]


def _page(request: HttpRequest, *, subject: User, own: bool) -> HttpResponse:
    current_key = request.session.session_key if own else None
    context = {
        **admin.site.each_context(request),
        "opts": User._meta,
        "title": "Your sessions" if own else f"Sessions of {subject}",
        "subject": subject,
        "own": own,
        "sessions": sessions.session_list(user=subject, current_key=current_key),
        "idle_minutes": sessions.idle_limit().total_seconds() // 60,
        "max_hours": sessions.lifetime_limit().total_seconds() // 3600,
    }
    return TemplateResponse(request, "admin/identity/sessions.html", context)


def _act(request: HttpRequest, *, subject: User, own: bool) -> HttpResponse:
    """A POST of the page: end one session (`ref`), or all but this one (`others`)."""
    actor = _user(request)
    here = request.path
    if "ref" in request.POST:
        ref = request.POST["ref"]
        current_key = request.session.session_key
        if own and current_key and sessions.session_ref(current_key) == ref:
            # Ending this very session is signing out.
            logout(request)
            return HttpResponseRedirect(reverse("admin:login"))
        if sessions.session_end(actor=actor, subject=subject, ref=ref):
            messages.success(request, "The session was ended: its next request goes to the sign-in page.")
        else:
            messages.info(request, "That session had already ended.")
    elif "others" in request.POST:
        keep = request.session.session_key if own else None
        ended = sessions.sessions_end_others(actor=actor, subject=subject, keep_key=keep)
        where = "everywhere else" if own else "everywhere"
        messages.success(request, f"Signed out {where}: {ended} session(s) ended.")
    return HttpResponseRedirect(here)


def own_sessions_view(request: HttpRequest) -> HttpResponse:
    subject = _user(request)
    if request.method == "POST":
        return _act(request, subject=subject, own=True)
    return _page(request, subject=subject, own=True)


def user_sessions_view(request: HttpRequest, user_id: int) -> HttpResponse:
    if not request.user.is_superuser:
        raise PermissionDenied
    subject = get_object_or_404(User, pk=user_id)
    own = subject.pk == request.user.pk
    if request.method == "POST":
        return _act(request, subject=subject, own=own)
    return _page(request, subject=subject, own=own)
