"""Granting access with four eyes: access requests, their approval (which applies them) and rejection, and
the command-line bootstrap. Revoking needs none of this (docs/admin.md, Granting access)."""

from __future__ import annotations

from django.contrib.auth.models import Group, Permission, User
from django.db import transaction
from django.utils import timezone

from audit.services import audit_event_record
from core.context import access_change
from core.errors import AccessRequestRefused, ReasonRequired, RoleRequired
from core.mfa import session_verification_refusal
from identity.models import AccessKind, AccessRequest, AccessRequestStatus, OidcIdentity
from identity.sso import sso_enabled, superuser_follows_claims


def access_follows_provider(*, subject: User, kind: str) -> bool:
    """Whether this access of `subject` is set by the identity provider at each sign-in (identity.sso): the
    roles of an account signed in through single sign-on, and its superuser status when the role map names
    "superuser". Such access is granted at the provider, not by access requests, which it would undo."""
    if not sso_enabled() or not OidcIdentity.objects.filter(user=subject).exists():
        return False
    return kind == AccessKind.ROLE or (kind == AccessKind.SUPERUSER and superuser_follows_claims())


def _refuse_if_provider_managed(*, subject: User, kind: str) -> None:
    if access_follows_provider(subject=subject, kind=kind):
        what = "superuser status" if kind == AccessKind.SUPERUSER else "roles"
        raise AccessRequestRefused(
            f"{subject} signs in through single sign-on: their {what} follow the identity provider's groups. "
            "Add them to the group there."
        )


def access_held(*, subject: User, kind: str, group: Group | None, permission: Permission | None) -> bool:
    """Whether `subject` already holds what a request of this kind would grant."""
    if kind == AccessKind.SUPERUSER:
        return subject.is_superuser
    if kind == AccessKind.ROLE:
        return group is not None and subject.groups.filter(pk=group.pk).exists()
    return permission is not None and subject.user_permissions.filter(pk=permission.pk).exists()


def _what(*, kind: str, group: Group | None, permission: Permission | None) -> dict[str, str]:
    if kind == AccessKind.ROLE and group is not None:
        return {"kind": kind, "role": group.name}
    if kind == AccessKind.PERMISSION and permission is not None:
        return {"kind": kind, "permission": f"{permission.content_type.app_label}.{permission.codename}"}
    return {"kind": kind}


def _grant(*, subject: User, kind: str, group: Group | None, permission: Permission | None) -> None:
    """Apply a grant. Only callers that enforce four eyes (or the audited bootstrap) reach here."""
    # Every role works in the admin, which needs staff status.
    if not subject.is_staff and kind != AccessKind.SUPERUSER:
        subject.is_staff = True
        subject.save(update_fields=["is_staff"])
    if kind == AccessKind.SUPERUSER:
        subject.is_superuser = True
        subject.is_staff = True
        subject.save(update_fields=["is_superuser", "is_staff"])
    elif kind == AccessKind.ROLE and group is not None:
        subject.groups.add(group)
    elif kind == AccessKind.PERMISSION and permission is not None:
        subject.user_permissions.add(permission)
    else:
        raise AccessRequestRefused(f"A {kind} grant must name what it grants.")


@transaction.atomic
def access_request_create(
    *,
    actor: User,
    subject: User,
    kind: str,
    group: Group | None = None,
    permission: Permission | None = None,
    reason: str,
) -> AccessRequest:
    """File a request that `subject` be granted a role, a permission or superuser status."""
    if not actor.has_perm("identity.add_accessrequest"):
        raise RoleRequired("Filing access requests is for administrators.")
    if refusal := session_verification_refusal(actor):
        raise refusal
    if not reason.strip():
        raise ReasonRequired("Say why this person needs this access: it is kept in the audit trail.")
    if kind not in AccessKind.values:
        raise AccessRequestRefused(f"Unknown kind of access: {kind}.")
    if (kind == AccessKind.ROLE) != (group is not None) or (kind == AccessKind.PERMISSION) != (permission is not None):
        raise AccessRequestRefused("A role request names a group; a permission request names a permission.")
    if not subject.is_active:
        raise AccessRequestRefused(f"{subject} is deactivated: access is not granted to inactive accounts.")
    _refuse_if_provider_managed(subject=subject, kind=kind)
    if access_held(subject=subject, kind=kind, group=group, permission=permission):
        raise AccessRequestRefused(f"{subject} already holds this.")
    pending = AccessRequest.objects.filter(
        subject=subject, kind=kind, group=group, permission=permission, status=AccessRequestStatus.PENDING
    )
    if pending.exists():
        raise AccessRequestRefused(f"The same request for {subject} is already waiting for approval.")
    access_request = AccessRequest.objects.create(
        subject=subject, kind=kind, group=group, permission=permission, reason=reason.strip(), requested_by=actor
    )
    audit_event_record(
        action="access_request.create",
        actor=actor,
        target=access_request,
        changes={"subject": subject.get_username(), **_what(kind=kind, group=group, permission=permission)},
        reason=access_request.reason,
    )
    return access_request


def _decide(*, actor: User, access_request: AccessRequest, status: AccessRequestStatus, note: str) -> AccessRequest:
    if not actor.has_perm("identity.decide_accessrequest"):
        raise RoleRequired("Approving or rejecting access requests is for administrators.")
    if refusal := session_verification_refusal(actor):
        raise refusal
    if not note.strip():
        raise ReasonRequired("A decision on an access request needs a note: it is kept in the audit trail.")
    if actor.pk == access_request.subject_id:
        raise AccessRequestRefused("Nobody decides a request for their own access.")
    if status == AccessRequestStatus.APPLIED and actor.pk == access_request.requested_by_id:
        raise AccessRequestRefused("A second administrator approves: not the one who filed the request.")
    # Compare-and-swap: two administrators deciding at once cannot both win.
    decided = AccessRequest.objects.filter(pk=access_request.pk, status=AccessRequestStatus.PENDING).update(
        status=status, decided_by=actor, decided_at=timezone.now(), decision_note=note.strip()
    )
    if not decided:
        raise AccessRequestRefused("This request was already decided.")
    access_request.refresh_from_db()
    return access_request


@transaction.atomic
def access_request_approve(*, actor: User, access_request: AccessRequest, note: str) -> AccessRequest:
    """Approve another administrator's request and apply it at once."""
    access_request = _decide(actor=actor, access_request=access_request, status=AccessRequestStatus.APPLIED, note=note)
    subject = User.objects.select_for_update().get(pk=access_request.subject_id)
    if not subject.is_active:
        raise AccessRequestRefused(f"{subject} was deactivated since the request was filed.")
    _refuse_if_provider_managed(subject=subject, kind=access_request.kind)
    what = _what(kind=access_request.kind, group=access_request.group, permission=access_request.permission)
    audit_event_record(
        action="access_request.approve", actor=actor, target=access_request, changes=what, reason=note.strip()
    )
    with access_change(actor_repr=f"access_request:{access_request.pk}"):
        _grant(
            subject=subject, kind=access_request.kind, group=access_request.group, permission=access_request.permission
        )
    audit_event_record(
        action="access.grant",
        actor=actor,
        target=subject,
        changes={**what, "access_request": access_request.pk, "requested_by": str(access_request.requested_by)},
        reason=access_request.reason,
    )
    return access_request


@transaction.atomic
def access_request_reject(*, actor: User, access_request: AccessRequest, note: str) -> AccessRequest:
    """Reject a request (its requester may withdraw it this way too)."""
    access_request = _decide(actor=actor, access_request=access_request, status=AccessRequestStatus.REJECTED, note=note)
    audit_event_record(
        action="access_request.reject",
        actor=actor,
        target=access_request,
        changes=_what(kind=access_request.kind, group=access_request.group, permission=access_request.permission),
        reason=note.strip(),
    )
    return access_request


@transaction.atomic
def access_bootstrap_grant(
    *, subject: User, kind: str, group: Group | None = None, reason: str, actor_repr: str
) -> bool:
    """Grant access from the command line (`grant_access`): for the first administrators, and for recovery
    by whoever runs the host. Audited under `actor_repr`. Returns False when `subject` already held it."""
    if not reason.strip():
        raise ReasonRequired("Say why this access is granted: it is kept in the audit trail.")
    if access_held(subject=subject, kind=kind, group=group, permission=None):
        return False
    with access_change(actor_repr=actor_repr):
        _grant(subject=subject, kind=kind, group=group, permission=None)
    audit_event_record(
        action="access.grant",
        actor_repr=actor_repr,
        target=subject,
        changes={**_what(kind=kind, group=group, permission=None), "bootstrap": True},
        reason=reason.strip(),
    )
    return True
