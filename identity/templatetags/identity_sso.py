from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django import template
from django.urls import reverse

from identity import sso

register = template.Library()


@register.inclusion_tag("admin/identity/sso_sign_in.html", takes_context=True)
def sso_sign_in_link(context: Any) -> dict[str, Any]:
    """The "Sign in with SSO" link of the sign-in page, when single sign-on is configured."""
    if not sso.sso_enabled():
        return {"sso_url": ""}
    request = context.get("request")
    next_url = request.GET.get("next", "") if request is not None else ""
    url = reverse("oidc_authentication_init")
    return {"sso_url": f"{url}?{urlencode({'next': next_url})}" if next_url else url}
