"""The admin's pages of two-factor authentication: verify a session, enrol an authenticator app, and one's
own overview (recovery codes, removal). Thin: identity.mfa does the work; identity.middleware decides who
may reach which page before verification."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods
from django_otp import login as otp_login
from django_otp.plugins.otp_static.models import StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from core.errors import DomainError
from core.mfa import mfa_enrolled, mfa_must_verify, mfa_required, session_verified
from identity import mfa

PENDING_KEY = "tollgate_mfa_pending_key"


class CodeForm(forms.Form):
    code = forms.CharField(
        label="Code",
        max_length=32,
        strip=True,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "autofocus": True, "inputmode": "text"}),
    )


def _user(request: HttpRequest) -> User:
    return request.user  # type: ignore[return-value]


def _page(request: HttpRequest, template: str, title: str, **context: Any) -> TemplateResponse:
    page = {**admin.site.each_context(request), "title": title, **context}
    if not session_verified(request.user) and mfa_must_verify(request.user):
        # Before the second factor, the admin's navigation (the models this account may reach) and the
        # user links are not shown: only this page and signing out.
        page.update(available_apps=[], is_nav_sidebar_enabled=False, mfa_pending=True)
    return TemplateResponse(request, f"admin/identity/mfa/{template}", page)


def _next_url(request: HttpRequest) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(target, {request.get_host()}, require_https=request.is_secure()):
        return target
    return reverse("admin:index")


def _verified(request: HttpRequest, device: Any) -> None:
    # A new session key for the now stronger session, as at sign-in.
    request.session.cycle_key()
    otp_login(request, device)


@require_http_methods(["GET", "POST"])
def verify_view(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    enrolled = mfa_enrolled(user)
    if not enrolled and mfa_required(user):
        return HttpResponseRedirect(reverse("mfa-enrol"))
    if not enrolled or session_verified(user):
        if request.method == "POST" or "next" in request.GET:
            return HttpResponseRedirect(_next_url(request))
        return _page(
            request, "verify.html", "Two-factor verification", verified=enrolled, nothing_to_verify=not enrolled
        )
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        outcome = mfa.mfa_verify(user=user, token=form.cleaned_data["code"])
        if outcome.device is not None:
            _verified(request, outcome.device)
            if outcome.recovery_codes_left is not None:
                messages.warning(
                    request,
                    f"You signed in with a recovery code; {outcome.recovery_codes_left} left. Each code works once: "
                    "make new ones under Two-factor authentication when they run low.",
                )
            return HttpResponseRedirect(_next_url(request))
        if outcome.throttled:
            form.add_error(None, "Too many wrong codes: wait a little (each failure doubles the wait) and try again.")
        else:
            form.add_error("code", "That code is not valid. Enter the code your app shows now, or a recovery code.")
    return _page(
        request,
        "verify.html",
        "Two-factor verification",
        form=form,
        next=request.POST.get("next") or request.GET.get("next", ""),
    )


@require_http_methods(["GET", "POST"])
def enrol_view(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    if mfa_enrolled(user) and not session_verified(user):
        return HttpResponseRedirect(reverse("mfa-verify"))
    if TOTPDevice.objects.filter(user=user, confirmed=True).exists():
        return _page(request, "enrol.html", "Enrol an authenticator app", already_enrolled=True)
    key = request.session.get(PENDING_KEY)
    if not isinstance(key, str) or len(key) != 40:
        key = mfa.totp_key_new()
        request.session[PENDING_KEY] = key
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            device, codes = mfa.mfa_totp_enrol(actor=user, key=key, token=form.cleaned_data["code"])
        except DomainError as error:
            form.add_error("code", error.detail)
        else:
            request.session.pop(PENDING_KEY, None)
            _verified(request, device)
            return _page(request, "recovery_codes.html", "Your recovery codes", codes=codes, enrolled=True)
    url = mfa.totp_config_url(user=user, key=key)
    return _page(
        request,
        "enrol.html",
        "Enrol an authenticator app",
        form=form,
        qr=mfa.qr_data_uri(url),
        secret=mfa.totp_key_text(key),
        required=mfa_required(user),
    )


@require_http_methods(["GET", "POST"])
def overview_view(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    if request.method == "POST":
        try:
            if request.POST.get("action") == "regenerate":
                codes = mfa.mfa_recovery_codes_regenerate(actor=user)
                return _page(request, "recovery_codes.html", "Your new recovery codes", codes=codes, enrolled=False)
            if request.POST.get("action") == "remove":
                mfa.mfa_devices_remove(actor=user)
                messages.success(request, "Your authenticator app and recovery codes were removed.")
        except DomainError as error:
            messages.error(request, error.detail)
        return HttpResponseRedirect(reverse("mfa-overview"))
    totp = TOTPDevice.objects.filter(user=user, confirmed=True).first()
    return _page(
        request,
        "overview.html",
        "Two-factor authentication",
        totp=totp,
        recovery_codes_left=StaticToken.objects.filter(device__user=user).count(),
        required=mfa_required(user),
    )
