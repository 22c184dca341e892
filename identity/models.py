"""Access requests: a grant of access made by one administrator and approved by another (docs/admin.md,
Granting access)."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import Group, Permission
from django.db import models
from django.utils import timezone


class AccessKind(models.TextChoices):
    ROLE = "role", "Role (group)"
    SUPERUSER = "superuser", "Superuser status"
    PERMISSION = "permission", "Permission held directly"


class AccessRequestStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    APPLIED = "applied", "Approved and applied"
    REJECTED = "rejected", "Rejected"


class AccessRequest(models.Model):
    """A request that `subject` be granted a role, a permission or superuser status. Filed by one
    administrator, approved (and applied at once) or rejected by another who is neither the requester nor
    the subject. Never edited after it is filed: what the approver saw is what is applied."""

    subject = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="access_requests")
    kind = models.CharField(max_length=16, choices=AccessKind.choices)
    group = models.ForeignKey(Group, on_delete=models.CASCADE, null=True, blank=True, help_text="For a role.")
    permission = models.ForeignKey(
        Permission, on_delete=models.CASCADE, null=True, blank=True, help_text="For a permission held directly."
    )
    reason = models.TextField(help_text="Why this person needs it: kept in the audit trail.")
    status = models.CharField(
        max_length=16, choices=AccessRequestStatus.choices, default=AccessRequestStatus.PENDING, editable=False
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", editable=False
    )
    requested_at = models.DateTimeField(default=timezone.now, editable=False)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+", editable=False
    )
    decided_at = models.DateTimeField(null=True, blank=True, editable=False)
    decision_note = models.TextField(blank=True, editable=False)

    class Meta:
        ordering = ["-requested_at", "-id"]
        permissions = [("decide_accessrequest", "Can approve or reject access requests")]
        constraints = [
            models.CheckConstraint(
                name="access_request_names_what_it_grants",
                condition=(
                    models.Q(kind="role", group__isnull=False, permission__isnull=True)
                    | models.Q(kind="permission", group__isnull=True, permission__isnull=False)
                    | models.Q(kind="superuser", group__isnull=True, permission__isnull=True)
                ),
            )
        ]

    def __str__(self) -> str:
        return f"{self.grant_label} for {self.subject}"

    @property
    def grant_label(self) -> str:
        if self.kind == AccessKind.ROLE and self.group is not None:
            return f"Role {self.group.name}"
        if self.kind == AccessKind.PERMISSION and self.permission is not None:
            return f"Permission {self.permission.content_type.app_label}.{self.permission.codename}"
        return "Superuser status"


class OidcIdentity(models.Model):
    """The link between a person and their account at the identity provider (docs/admin.md, Single sign-on):
    the provider's issuer and its subject identifier (`sub`), which the provider never reassigns. A sign-in
    finds its account by this pair only — never by e-mail address or user name, which the provider's users
    may be able to change."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="oidc_identity", editable=False
    )
    issuer = models.CharField(max_length=255, editable=False)
    subject = models.CharField(max_length=255, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_sign_in_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        verbose_name = "single sign-on identity"
        constraints = [models.UniqueConstraint(fields=["issuer", "subject"], name="oidc_identity_unique_subject")]

    def __str__(self) -> str:
        return f"{self.subject} at {self.issuer}"
