"""The admin of accounts, groups and access requests. It explains the four-eyes rule on access
(docs/admin.md, Granting access) before the model-layer guard (identity.guard) would refuse: grants go
through access requests."""

from __future__ import annotations

import importlib
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import GroupAdmin as DjangoGroupAdmin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import UserChangeForm
from django.contrib.auth.models import Group, User
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django_otp import devices_for_user
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice
from qsessions.admin import Session as QSession  # importing it registers the admin unregistered below

from core.admin import action_page
from core.errors import DomainError
from core.roles import Role
from identity import mfa, services
from identity.guard import GRANT_RULE, HOLDER_ONLY_RULE, ROLE_NAME_RULE, password_set_allowed
from identity.models import AccessRequest, AccessRequestStatus
from identity.session_admin import session_urls


def _user(request: HttpRequest) -> User:
    return request.user  # type: ignore[return-value]


def _request_link(subject: User | None) -> SafeString:
    url = reverse("admin:identity_accessrequest_add") + (f"?subject={subject.pk}" if subject and subject.pk else "")
    return format_html('{} <a href="{}" class="access-request-link">File an access request</a>.', GRANT_RULE, url)


# --- accounts ---------------------------------------------------------------------------------------------


class GuardedUserChangeForm(UserChangeForm):  # type: ignore[type-arg]
    """Refuses grants with an explanation and a link to the access-request form; revoking is immediate."""

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        user = self.instance
        if not user.pk:
            return cleaned
        held_groups = set(user.groups.values_list("pk", flat=True))
        if "groups" in cleaned and {group.pk for group in cleaned["groups"]} - held_groups:
            self.add_error("groups", _request_link(user))
        held_permissions = set(user.user_permissions.values_list("pk", flat=True))
        if "user_permissions" in cleaned and {perm.pk for perm in cleaned["user_permissions"]} - held_permissions:
            self.add_error("user_permissions", _request_link(user))
        stored_superuser = User.objects.filter(pk=user.pk).values_list("is_superuser", flat=True).first()
        if cleaned.get("is_superuser") and not stored_superuser:
            self.add_error("is_superuser", _request_link(user))
        return cleaned


class MfaResetForm(forms.Form):
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Required: kept in the audit trail. The person enrols again at their next sign-in.",
    )


admin.site.unregister(User)
# django-qsessions' own admin of sessions shows their keys (credentials) and data: sessions are seen and ended
# on the Sessions pages instead (identity.session_admin). Its module is imported above, so it is registered.
admin.site.unregister(QSession)
# Devices change only through identity.mfa (audited): django-otp's own admin pages would edit them directly,
# and show the secrets. Their modules are imported here, ahead of the admin's autodiscovery (which imports
# this app's first), so that what they register is there to unregister.
importlib.import_module("django_otp.plugins.otp_totp.admin")
importlib.import_module("django_otp.plugins.otp_static.admin")
for _device_model in (TOTPDevice, StaticDevice):
    if admin.site.is_registered(_device_model):
        admin.site.unregister(_device_model)


@admin.register(User)
class UserAdmin(DjangoUserAdmin):  # type: ignore[type-arg]
    form = GuardedUserChangeForm
    # Links a superuser to the person's sessions (docs/admin.md, Sessions).
    change_form_template = "admin/identity/user/change_form.html"
    fieldsets = (
        (None, {"fields": ("username", "password")}),
        ("Personal info", {"fields": ("first_name", "last_name", "email")}),
        (
            "Permissions",
            {
                "fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions"),
                "description": (
                    "Removing access takes effect at once. Granting a role, a permission or superuser status "
                    "needs a second administrator: file an access request (Identity and access › Access "
                    "requests), which another administrator approves."
                ),
            },
        ),
        ("Important dates", {"fields": ("last_login", "date_joined")}),
        ("Two-factor authentication", {"fields": ("two_factor",)}),
    )
    readonly_fields = ("two_factor",)

    @admin.display(description="Devices")
    def two_factor(self, obj: User) -> SafeString:
        kinds = sorted({"authenticator app" if isinstance(d, TOTPDevice) else "recovery codes"
                        for d in devices_for_user(obj, confirmed=True)})  # fmt: skip
        if not kinds:
            return format_html("{}", "None enrolled.")
        url = reverse("admin:auth_user_mfa_reset", args=[obj.pk])
        return format_html(
            '{}. <a href="{}" id="mfa-reset-link">Reset two-factor authentication</a>',
            ", ".join(kinds).capitalize(),
            url,
        )

    def get_urls(self) -> list[URLPattern]:
        return [
            path(
                "<int:object_id>/mfa-reset/",
                self.admin_site.admin_view(self.mfa_reset_view),
                name="auth_user_mfa_reset",
            ),
            *session_urls(self.admin_site),
            *super().get_urls(),
        ]

    def mfa_reset_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        """An administrator resets another person's devices, with a reason (identity.mfa.mfa_devices_reset)."""
        if not request.user.is_superuser:
            raise PermissionDenied
        subject = get_object_or_404(User, pk=object_id)
        form = MfaResetForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            try:
                mfa.mfa_devices_reset(actor=_user(request), subject=subject, reason=form.cleaned_data["reason"])
            except DomainError as exc:
                form.add_error(None, exc.detail)
            else:
                self.message_user(request, f"Two-factor authentication of {subject} was reset.")
                return HttpResponseRedirect(reverse("admin:auth_user_change", args=[subject.pk]))
        return action_page(
            self,
            request,
            obj=subject,
            form=form,
            title=f"Reset two-factor authentication: {subject}",
            submit="Reset two-factor authentication",
        )

    def user_change_password(self, request: HttpRequest, id: str, form_url: str = "") -> HttpResponse:
        subject = self.get_object(request, id)
        if subject is not None and not password_set_allowed(subject=subject, actor=request.user):
            self.message_user(request, HOLDER_ONLY_RULE, messages.ERROR)
            return HttpResponseRedirect(reverse("admin:auth_user_change", args=[subject.pk]))
        return super().user_change_password(request, id, form_url)


class GuardedGroupForm(forms.ModelForm):  # type: ignore[type-arg]
    class Meta:
        model = Group
        fields = ["name", "permissions"]

    def clean_name(self) -> str:
        name: str = self.cleaned_data["name"]
        stored = self.instance.name if self.instance.pk else None
        if stored is not None and stored != name and {stored, name} & set(Role.values):
            raise forms.ValidationError(ROLE_NAME_RULE)
        return name

    def clean_permissions(self) -> Any:
        permissions = self.cleaned_data["permissions"]
        held = set(self.instance.permissions.values_list("pk", flat=True)) if self.instance.pk else set()
        if {permission.pk for permission in permissions} - held:
            raise forms.ValidationError(
                "A group's permissions are declared in code (audit/roles.py) and reviewed there; removing one "
                "takes effect at once. To give one person a permission, file an access request."
            )
        return permissions


admin.site.unregister(Group)


@admin.register(Group)
class GroupAdmin(DjangoGroupAdmin):
    form = GuardedGroupForm


# --- access requests --------------------------------------------------------------------------------------


class AccessRequestForm(forms.ModelForm):  # type: ignore[type-arg]
    class Meta:
        model = AccessRequest
        fields = ["subject", "kind", "group", "permission", "reason"]


class DecisionForm(forms.Form):
    note = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Required: kept in the audit trail. Approving applies the grant at once.",
    )


DECISIONS = {
    "approve": ("Approve and apply", services.access_request_approve),
    "reject": ("Reject", services.access_request_reject),
}


@admin.register(AccessRequest)
class AccessRequestAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    form = AccessRequestForm
    change_form_template = "admin/identity/accessrequest/change_form.html"
    list_display = ["id", "subject", "grant_label", "status", "requested_by", "requested_at", "decided_by"]
    list_filter = ["status", "kind"]
    search_fields = ["subject__username", "requested_by__username", "reason"]
    list_select_related = ["subject", "requested_by", "decided_by", "group", "permission__content_type"]
    readonly_fields = [
        "subject",
        "kind",
        "group",
        "permission",
        "reason",
        "status",
        "requested_by",
        "requested_at",
        "decided_by",
        "decided_at",
        "decision_note",
    ]

    @admin.display(description="Grant")
    def grant_label(self, obj: AccessRequest) -> str:
        return obj.grant_label

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        # The add form is the only one that edits; a filed request never changes (approvers see what applies).
        return [] if obj is None else self.readonly_fields

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: AccessRequest, form: forms.ModelForm, change: bool) -> None:  # type: ignore[type-arg]
        data = form.cleaned_data
        created = services.access_request_create(
            actor=_user(request),
            subject=data["subject"],
            kind=data["kind"],
            group=data.get("group"),
            permission=data.get("permission"),
            reason=data["reason"],
        )
        obj.pk = created.pk

    def changeform_view(
        self, request: HttpRequest, object_id: str | None = None, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except DomainError as exc:
            self.message_user(request, exc.detail, messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

    def render_change_form(self, request: HttpRequest, context: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        obj = context.get("original")
        context["can_decide"] = (
            obj is not None
            and obj.status == AccessRequestStatus.PENDING
            and request.user.has_perm("identity.decide_accessrequest")
        )
        return super().render_change_form(request, context, *args, **kwargs)

    def get_urls(self) -> list[URLPattern]:
        return [
            path(
                "<int:object_id>/decide/<str:decision>/",
                self.admin_site.admin_view(self.decide_view),
                name="identity_accessrequest_decide",
            ),
            *super().get_urls(),
        ]

    def decide_view(self, request: HttpRequest, object_id: int, decision: str) -> HttpResponse:
        if decision not in DECISIONS or not request.user.has_perm("identity.decide_accessrequest"):
            raise PermissionDenied
        access_request = get_object_or_404(AccessRequest, pk=object_id)
        label, decide = DECISIONS[decision]
        form = DecisionForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            try:
                decide(actor=_user(request), access_request=access_request, note=form.cleaned_data["note"])
            except DomainError as exc:
                form.add_error(None, exc.detail)
            else:
                self.message_user(request, f"{label}: done for {access_request}.")
                return HttpResponseRedirect(reverse("admin:identity_accessrequest_change", args=[access_request.pk]))
        return action_page(
            self, request, obj=access_request, form=form, title=f"{label}: {access_request}", submit=label
        )
