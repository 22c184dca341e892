"""Who must use a second factor, and the check every governed change makes of the session acting.

The policy lives here, beside the roles it names, so that every service can ask it: the admin's gate
(identity.middleware) holds an unverified session to the sign-in, verification and enrolment pages, and
`require_permission` (core.governance) refuses the change itself when the request acting for `actor` is a
signed-in session that had to verify and did not. A bypass of the gate (another URL, an admin action, an
ajax endpoint) still meets the service. Changes made outside a request (the shell on the host, Celery tasks,
API clients, which authenticate with tokens) have no session to verify and are not refused here.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django_otp import user_has_device

from core.context import current
from core.errors import VerificationRequired
from core.roles import ROLE_PERMISSIONS

SUPERUSER = "superuser"


def mfa_required_roles() -> list[str]:
    return list(settings.TOLLGATE_MFA_REQUIRED_ROLES)


def mfa_required(user: Any) -> bool:
    """Whether the account must use a second factor (TOLLGATE_MFA_REQUIRED_ROLES): a superuser when
    "superuser" is named; a member of a named role; and anyone able to do more than the roles not named
    allow — a permission held directly or through another group counts as what it allows, not by the name
    it came under (an approver's permission granted on its own needs the second factor an approver does).
    An empty setting requires it of nobody."""
    if user is None or not user.is_authenticated:
        return False
    roles = mfa_required_roles()
    if not roles:
        return False
    if user.is_superuser:
        return SUPERUSER in roles
    names = [name for name in roles if name != SUPERUSER]
    if names and user.groups.filter(name__in=names).exists():
        return True
    exempt = {perm for role, perms in ROLE_PERMISSIONS.items() if role.value not in names for perm in perms}
    return bool(user.get_all_permissions() - exempt)


def mfa_enrolled(user: Any) -> bool:
    """Whether the account holds a confirmed device (an authenticator app or recovery codes)."""
    return bool(user is not None and user.is_authenticated and user_has_device(user, confirmed=True))


def mfa_must_verify(user: Any) -> bool:
    """Whether a session of this account must be verified with a second factor: its roles require it, or it
    enrolled of its own accord."""
    return mfa_required(user) or mfa_enrolled(user)


def session_verified(user: Any) -> bool:
    """Whether a second factor verified the session (django-otp's middleware marks request.user); a user
    object that did not pass through it counts as unverified."""
    is_verified = getattr(user, "is_verified", None)
    return bool(callable(is_verified) and is_verified())


def session_verification_refusal(actor: Any) -> VerificationRequired | None:
    """The refusal for a change `actor` makes in an unverified session that had to verify, or None."""
    context = current()
    request = context.request if context else None
    if request is None:
        return None
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or actor is None or user.pk != getattr(actor, "pk", None):
        return None
    if session_verified(user) or not mfa_must_verify(user):
        return None
    return VerificationRequired(
        "Verify this session with your authenticator app or a recovery code (two-factor authentication) first."
    )
