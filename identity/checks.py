"""Start-up checks of the identity settings (they run with `manage.py check --deploy` too)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, register

from core.mfa import SUPERUSER
from core.roles import Role


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
