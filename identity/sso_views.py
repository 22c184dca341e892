"""The pages of single sign-on (identity.sso): the start, which sends the browser to the provider, the
provider's callback, and the page a refused sign-in ends on. All answer 404 while single sign-on is off."""

from __future__ import annotations

import logging
from typing import Any

import requests
from django.core.exceptions import ImproperlyConfigured
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView

from identity import sso
from identity.oidc import oidc_setting

logger = logging.getLogger(__name__)


class _SsoOnly:
    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not sso.sso_enabled():
            raise Http404("Single sign-on is not configured.")
        response: HttpResponse = super().dispatch(request, *args, **kwargs)  # type: ignore[misc]
        return response


class SsoStartView(_SsoOnly, OIDCAuthenticationRequestView):  # type: ignore[misc]
    def __init__(self, **kwargs: Any) -> None:
        # mozilla-django-oidc reads the endpoints here; with single sign-on off there are none to read.
        super(OIDCAuthenticationRequestView, self).__init__(**kwargs)

    @staticmethod
    def get_settings(attr: str, *args: Any) -> Any:
        return oidc_setting(attr, *args)

    def get(self, request: HttpRequest) -> HttpResponse:
        try:
            self.OIDC_OP_AUTH_ENDPOINT = self.get_settings("OIDC_OP_AUTHORIZATION_ENDPOINT")
        except (requests.RequestException, ValueError, ImproperlyConfigured) as exc:
            logger.warning("the identity provider's discovery document is unavailable: %s", exc)
            return _refused(request, "The identity provider cannot be reached: try again later.", status=502)
        self.OIDC_RP_CLIENT_ID = self.get_settings("OIDC_RP_CLIENT_ID")
        response: HttpResponse = super().get(request)
        return response


def _refused(request: HttpRequest, reason: str, *, status: int) -> HttpResponse:
    context = {"title": "Single sign-on refused", "reason": reason}
    return TemplateResponse(request, "admin/identity/sso_failed.html", context, status=status)


class SsoCallbackView(_SsoOnly, OIDCAuthenticationCallbackView):  # type: ignore[misc]
    @staticmethod
    def get_settings(attr: str, *args: Any) -> Any:
        return oidc_setting(attr, *args)

    def login_failure(self) -> HttpResponse:
        request = self.request
        reason = getattr(request, "tollgate_sso_refused", "") or "The identity provider did not sign you in."
        return _refused(request, reason, status=403)
