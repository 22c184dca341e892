"""Single sign-on over OpenID Connect (docs/admin.md, Single sign-on): the provider's settings, the roles a
person's claims map to, and the services a sign-in, the inactivity check and deactivation run.

When single sign-on is on, the identity provider is the system of record for the roles of the accounts it
signs in: each sign-in sets the account's roles to exactly those its claims map to (adding and removing),
and records every change with the claim values in the audit trail. That is four eyes moved to the provider:
who is in which group there is governed there. Superuser status follows a claim only when the role map
names "superuser" explicitly; otherwise a sign-in never grants or removes it (access requests do).
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import requests
from django.conf import settings
from django.contrib.auth.models import Group, User
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.services import audit_event_record
from core.context import access_change
from core.errors import SingleSignOnRefused
from core.roles import Role
from identity.models import OidcIdentity

logger = logging.getLogger(__name__)

SUPERUSER = "superuser"
# The longest claim value kept in the audit trail, and the most group values listed there.
_AUDITED_VALUE_CHARS = 200
_AUDITED_VALUES = 50
_DISCOVERY_SECONDS = 60 * 60

_ENDPOINT_SETTINGS = {
    "authorization_endpoint": "TOLLGATE_OIDC_AUTHORIZATION_ENDPOINT",
    "token_endpoint": "TOLLGATE_OIDC_TOKEN_ENDPOINT",
    "userinfo_endpoint": "TOLLGATE_OIDC_USERINFO_ENDPOINT",
    "jwks_uri": "TOLLGATE_OIDC_JWKS_ENDPOINT",
}


def sso_enabled() -> bool:
    """Whether single sign-on is configured (TOLLGATE_OIDC_ISSUER)."""
    return bool(settings.TOLLGATE_OIDC_ISSUER)


def sso_issuer() -> str:
    return str(settings.TOLLGATE_OIDC_ISSUER).rstrip("/")


def sso_provider_metadata() -> dict[str, Any]:
    """The provider's discovery document (/.well-known/openid-configuration), kept for an hour. It must
    name the configured issuer: a document of another issuer is refused."""
    issuer = sso_issuer()
    key = "tollgate:oidc:discovery:" + hashlib.sha256(issuer.encode()).hexdigest()
    metadata = cache.get(key)
    if isinstance(metadata, dict):
        return metadata
    response = requests.get(
        f"{issuer}/.well-known/openid-configuration", timeout=settings.TOLLGATE_OIDC_TIMEOUT, allow_redirects=False
    )
    response.raise_for_status()
    metadata = response.json()
    if not isinstance(metadata, dict) or str(metadata.get("issuer", "")).rstrip("/") != issuer:
        raise ImproperlyConfigured("The provider's discovery document names another issuer than TOLLGATE_OIDC_ISSUER.")
    cache.set(key, metadata, _DISCOVERY_SECONDS)
    return metadata


def sso_endpoint(name: str) -> str:
    """One of the provider's endpoints: from its setting when set, else from the discovery document."""
    explicit = str(getattr(settings, _ENDPOINT_SETTINGS[name], "") or "")
    if explicit:
        return explicit
    return str(sso_provider_metadata().get(name) or "")


# --- Roles from claims -------------------------------------------------------------------------------------


def role_map_errors(role_map: Any) -> list[str]:
    """What is wrong with a TOLLGATE_OIDC_ROLE_MAP (for the system check); empty when it is usable."""
    if not isinstance(role_map, dict):
        return ["TOLLGATE_OIDC_ROLE_MAP is a JSON object of provider group names to Tollgate roles."]
    allowed = {*Role.values, SUPERUSER}
    errors = []
    for group, roles in role_map.items():
        names = roles if isinstance(roles, list) else [roles]
        for name in names:
            if name not in allowed:
                known = ", ".join(sorted(allowed))
                errors.append(f"TOLLGATE_OIDC_ROLE_MAP maps {group!r} to {name!r}, which is none of: {known}.")
    return errors


def _role_map() -> dict[str, set[str]]:
    allowed = {*Role.values, SUPERUSER}
    mapped: dict[str, set[str]] = {}
    role_map = settings.TOLLGATE_OIDC_ROLE_MAP if isinstance(settings.TOLLGATE_OIDC_ROLE_MAP, dict) else {}
    for group, roles in role_map.items():
        names = roles if isinstance(roles, list) else [roles]
        # An unknown role name is a configuration error (identity.checks); it never grants anything.
        mapped[str(group)] = {name for name in names if isinstance(name, str) and name in allowed}
    return mapped


def claim_groups(claims: dict[str, Any]) -> list[str]:
    """The group names the roles claim carries: a list of strings, or one string (providers differ);
    anything else in it is ignored."""
    value = claims.get(settings.TOLLGATE_OIDC_ROLES_CLAIM)
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [item for item in value if isinstance(item, str)]
    return []


def roles_from_claims(claims: dict[str, Any]) -> set[str]:
    """The Tollgate roles (and "superuser", only when the map names it) the claims map to. Group names are
    compared exactly: no case folding, no trimming — "Admins " is not "Admins"."""
    role_map = _role_map()
    roles: set[str] = set()
    for group in claim_groups(claims):
        roles |= role_map.get(group, set())
    return roles


def superuser_follows_claims() -> bool:
    return any(SUPERUSER in roles for roles in _role_map().values())


def _audited_groups(claims: dict[str, Any]) -> list[str]:
    return [group[:_AUDITED_VALUE_CHARS] for group in claim_groups(claims)[:_AUDITED_VALUES]]


# --- Sign-in ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Subject:
    issuer: str
    subject: str


def _subject_of(claims: dict[str, Any]) -> _Subject:
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject or len(subject) > 255:
        raise SingleSignOnRefused("The provider's claims carry no usable subject identifier (sub).")
    return _Subject(issuer=sso_issuer(), subject=subject)


def _username_from(claims: dict[str, Any]) -> str:
    validator = UnicodeUsernameValidator()
    for claim in settings.TOLLGATE_OIDC_USERNAME_CLAIMS:
        value = claims.get(claim)
        if not isinstance(value, str) or not value.strip():
            continue
        # As Django stores it (NFKC): the taken-name check must see the name that would be saved, not a
        # compatibility spelling of it (fullwidth letters) that passes the check and is saved as another's.
        username = User.normalize_username(value.strip())
        if len(username) > User._meta.get_field("username").max_length or "\x00" in username:  # type: ignore[operator]
            raise SingleSignOnRefused(f"The {claim} claim is too long for a user name.")
        try:
            validator(username)
        except ValidationError:
            raise SingleSignOnRefused(f"The {claim} claim is not a usable user name.") from None
        return username
    raise SingleSignOnRefused(
        f"The provider's claims carry none of {', '.join(settings.TOLLGATE_OIDC_USERNAME_CLAIMS)} for a user name."
    )


def _email_from(claims: dict[str, Any]) -> str:
    email = claims.get("email")
    if isinstance(email, str) and len(email) <= 254 and re.fullmatch(r"[^@\s]+@[^@\s]+", email):
        return email
    return ""


def _refuse(*, claims: dict[str, Any], reason: str, user: User | None = None) -> SingleSignOnRefused:
    audit_event_record(
        action="auth.sso_refused",
        actor_repr="sso",
        target=user,
        object_type="auth.user",
        object_repr=(user.get_username() if user else str(claims.get("sub", ""))[:_AUDITED_VALUE_CHARS]),
        changes={
            "issuer": sso_issuer(),
            "sub": str(claims.get("sub", ""))[:_AUDITED_VALUE_CHARS],
            "groups": _audited_groups(claims),
        },
        reason=reason,
    )
    return SingleSignOnRefused(reason)


def _roles_sync(*, user: User, claims: dict[str, Any]) -> None:
    """Set the account's roles (and superuser status, when the map names it) to those the claims map to."""
    wanted = roles_from_claims(claims)
    role_groups = {group.name: group for group in Group.objects.filter(name__in=Role.values)}
    held = set(user.groups.filter(name__in=Role.values).values_list("name", flat=True))
    add = sorted((wanted - {SUPERUSER}) - held)
    remove = sorted(held - wanted)
    changes: dict[str, Any] = {}
    with access_change(actor_repr=f"sso:{sso_issuer()}"[:200]):
        if remove:
            user.groups.remove(*(role_groups[name] for name in remove if name in role_groups))
        if add:
            user.groups.add(*(role_groups[name] for name in add if name in role_groups))
        fields = []
        if superuser_follows_claims() and user.is_superuser != (SUPERUSER in wanted):
            user.is_superuser = SUPERUSER in wanted
            changes["superuser"] = user.is_superuser
            fields.append("is_superuser")
        # Every role works in the admin, which needs staff status; without a role there is no admin to reach.
        staff = bool(wanted - {SUPERUSER}) or user.is_superuser
        if user.is_staff != staff:
            user.is_staff = staff
            fields.append("is_staff")
        if fields:
            user.save(update_fields=fields)
    if add or remove or changes:
        audit_event_record(
            action="sso.roles_change",
            actor_repr=f"sso:{sso_issuer()}"[:200],
            target=user,
            changes={
                "added": add,
                "removed": remove,
                **changes,
                "claim": settings.TOLLGATE_OIDC_ROLES_CLAIM,
                "groups": _audited_groups(claims),
            },
            reason="roles follow the identity provider's groups claim",
        )


def sso_sign_in(*, claims: dict[str, Any]) -> User:
    """The account for a verified set of claims: found by (issuer, sub), or created at the first sign-in,
    with its roles set from the claims. Refused (SingleSignOnRefused, audited) when the account is
    deactivated, the claims map to no role (an existing account loses its roles first), or a new account's
    user name is unusable or already another account's."""
    subject = _subject_of(claims)
    identity = OidcIdentity.objects.filter(issuer=subject.issuer, subject=subject.subject).first()
    if identity is None:
        if not roles_from_claims(claims):
            raise _refuse(claims=claims, reason="the claims map to no Tollgate role")
        user = _account_create(subject=subject, claims=claims)
    else:
        user = _account_sync(identity=identity, claims=claims)
    with transaction.atomic():
        email = _email_from(claims)
        if email and user.email != email:
            user.email = email
            user.save(update_fields=["email"])
        OidcIdentity.objects.filter(user=user).update(last_sign_in_at=timezone.now())
        audit_event_record(
            action="auth.sso_sign_in",
            actor=user,
            target=user,
            changes={"issuer": subject.issuer, "sub": subject.subject},
        )
    return user


def _account_sync(*, identity: OidcIdentity, claims: dict[str, Any]) -> User:
    user = identity.user
    # A deactivated account stays so: the provider's sign-in never reactivates it (an administrator does).
    if not user.is_active:
        raise _refuse(claims=claims, user=user, reason="the account is deactivated")
    with transaction.atomic():
        user = User.objects.select_for_update().get(pk=identity.user_id)
        _roles_sync(user=user, claims=claims)
    if not roles_from_claims(claims):
        raise _refuse(claims=claims, user=user, reason="the claims map to no Tollgate role")
    return user


def _account_create(*, subject: _Subject, claims: dict[str, Any]) -> User:
    username = _username_from(claims)
    try:
        with transaction.atomic():
            if User.objects.filter(username__iexact=username).exists():
                # Never linked to an account that exists: the provider's user could take it over by
                # choosing its name. An administrator links it on the host (manage.py sso_link).
                raise IntegrityError("username taken")
            user = User.objects.create_user(username=username, email=_email_from(claims))
            OidcIdentity.objects.create(user=user, issuer=subject.issuer, subject=subject.subject)
            audit_event_record(
                action="sso.account_create",
                actor_repr=f"sso:{subject.issuer}"[:200],
                target=user,
                changes={"issuer": subject.issuer, "sub": subject.subject, "username": username},
            )
            _roles_sync(user=user, claims=claims)
    except IntegrityError:
        # A concurrent first sign-in of the same subject created it: that account it is.
        identity = OidcIdentity.objects.filter(issuer=subject.issuer, subject=subject.subject).first()
        if identity is not None:
            return _account_sync(identity=identity, claims=claims)
        raise _refuse(claims=claims, reason=f"the user name {username!r} belongs to another account") from None
    return user


def sso_link(*, user: User, subject: str, actor_repr: str) -> OidcIdentity:
    """Link an existing account to the provider's subject, so that its sign-ins reach this account (run on
    the host by an administrator: `manage.py sso_link`)."""
    if not subject or len(subject) > 255:
        raise SingleSignOnRefused("A subject identifier (sub) is 1 to 255 characters.")
    with transaction.atomic():
        if OidcIdentity.objects.filter(user=user).exists():
            raise SingleSignOnRefused(f"{user} is already linked to an identity at the provider.")
        if OidcIdentity.objects.filter(issuer=sso_issuer(), subject=subject).exists():
            raise SingleSignOnRefused("That subject is already linked to another account.")
        identity = OidcIdentity.objects.create(user=user, issuer=sso_issuer(), subject=subject)
        audit_event_record(
            action="sso.account_link",
            actor_repr=actor_repr,
            target=user,
            changes={"issuer": identity.issuer, "sub": subject},
        )
    return identity


# --- Deactivation -----------------------------------------------------------------------------------------


def person_deactivate(*, user: User, reason: str, actor_repr: str) -> bool:
    """Deactivate an account (is_active=False), audited. Whoever ends sessions listens to that save.
    Returns False when the account was already inactive."""
    with transaction.atomic():
        changed = User.objects.filter(pk=user.pk, is_active=True).exists()
        if not changed:
            return False
        user.is_active = False
        user.save(update_fields=["is_active"])
        audit_event_record(
            action="auth.account_deactivate",
            actor_repr=actor_repr,
            target=user,
            changes={"is_active": False},
            reason=reason,
        )
    return True


def sso_accounts_deactivate_inactive(*, now: Any = None) -> list[str]:
    """Deactivate the accounts signed in through the provider with no sign-in for
    TOLLGATE_OIDC_DEACTIVATE_AFTER_DAYS days (0: never). Returns their user names."""
    days = settings.TOLLGATE_OIDC_DEACTIVATE_AFTER_DAYS
    if days <= 0:
        return []
    cutoff = (now or timezone.now()) - timedelta(days=days)
    stale = OidcIdentity.objects.filter(last_sign_in_at__lt=cutoff, user__is_active=True).select_related("user")
    deactivated = []
    for identity in stale:
        if person_deactivate(
            user=identity.user,
            reason=f"no sign-in through the identity provider for {days} days",
            actor_repr="sso:inactivity",
        ):
            deactivated.append(identity.user.get_username())
    return deactivated
