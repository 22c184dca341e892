"""System checks of the identity settings: single sign-on's and two-factor authentication's (run by `check`,
`check --deploy` and at start-up)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, register

from core.mfa import SUPERUSER
from core.roles import Role
from identity.sso import role_map_errors


@register()
def sso_settings_check(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    errors = [Error(message, id="identity.E001") for message in role_map_errors(settings.TOLLGATE_OIDC_ROLE_MAP)]
    if settings.TOLLGATE_OIDC_ISSUER and not settings.TOLLGATE_OIDC_ROLE_MAP:
        errors.append(
            Error("Single sign-on is on but TOLLGATE_OIDC_ROLE_MAP is empty: nobody could sign in.", id="identity.E002")
        )
    return errors


@register()
def mfa_roles_check(app_configs: Any, **kwargs: Any) -> list[Error]:
    """TOLLGATE_MFA_REQUIRED_ROLES names "superuser" and roles: a misspelt name would exempt its holders."""
    known = {SUPERUSER, *Role.values}
    unknown = [name for name in settings.TOLLGATE_MFA_REQUIRED_ROLES if name not in known]
    if not unknown:
        return []
    return [
        Error(
            f"TOLLGATE_MFA_REQUIRED_ROLES names unknown roles: {', '.join(unknown)}.",
            hint=f"Use superuser and the names of roles: {', '.join(Role.values)}.",
            id="tollgate.E010",
        )
    ]
