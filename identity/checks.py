"""System checks of single sign-on's settings (run by `check`, `check --deploy` and at start-up)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, register

from identity.sso import role_map_errors


@register()
def sso_settings_check(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    errors = [Error(message, id="identity.E001") for message in role_map_errors(settings.TOLLGATE_OIDC_ROLE_MAP)]
    if settings.TOLLGATE_OIDC_ISSUER and not settings.TOLLGATE_OIDC_ROLE_MAP:
        errors.append(
            Error("Single sign-on is on but TOLLGATE_OIDC_ROLE_MAP is empty: nobody could sign in.", id="identity.E002")
        )
    return errors
