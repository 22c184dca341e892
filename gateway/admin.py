"""The gateway's records in the admin, read-only: the request log, jobs with the queue's state, batches,
and the prompts discovered on free-form calls (which an author may register as governed prompts)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from core.admin import ReadOnlyAdmin, action_page
from core.errors import DomainError
from gateway.discovery import discovered_prompt_register
from gateway.models import Batch, BatchItem, DiscoveredPrompt, Job, Run, WebhookDelivery
from gateway.selectors import queue_state

REGISTER_PERMISSIONS = ("prompts.add_prompt", "prompts.add_promptversion")


@admin.register(Run)
class RunAdmin(ReadOnlyAdmin):
    """The request log: redacted bodies (placeholders, never personal data) for incident investigation,
    blanked after TOLLGATE_BODY_RETENTION_DAYS."""

    list_display = [
        "public_id",
        "created_at",
        "environment",
        "api_client",
        "prompt",
        "version",
        "endpoint",
        "succeeded",
    ]
    list_filter = ["environment", "succeeded", "endpoint"]
    search_fields = ["public_id", "request_id"]
    list_select_related = ["api_client", "prompt", "version"]
    date_hierarchy = "created_at"
    show_full_result_count = False
    readonly_fields = [
        "public_id",
        "request_id",
        "created_at",
        "environment",
        "api_client",
        "prompt",
        "version",
        "endpoint",
        "succeeded",
        "result",
        "request_redacted",
        "output_redacted",
        "bodies_expire_at",
        "bodies_purged_at",
    ]


class _ReadOnlyInline(admin.TabularInline):  # type: ignore[type-arg]
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class WebhookDeliveryInline(_ReadOnlyInline):
    model = WebhookDelivery
    fields = readonly_fields = ("attempt", "created_at", "url", "status_code", "error", "duration_ms", "delivered")


@admin.register(Job)
class JobAdmin(ReadOnlyAdmin):
    """Queued runs, with the queue's depth and age per environment above the list. The job's variables are
    shown redacted; its mapping and result are sealed and never shown here."""

    change_list_template = "admin/gateway/job/change_list.html"
    list_display = ["public_id", "created_at", "environment", "api_client", "prompt", "status", "attempts"]
    list_filter = ["status", "environment"]
    search_fields = ["public_id", "attempt_request_id", "run_public_id"]
    list_select_related = ["api_client", "prompt"]
    date_hierarchy = "created_at"
    show_full_result_count = False
    fields = readonly_fields = (
        "public_id",
        "status",
        "environment",
        "api_client",
        "prompt",
        "version",
        "variables_redacted",
        "metadata",
        "callback_url",
        "attempts",
        "attempt_request_id",
        "lease_expires_at",
        "run_public_id",
        "error",
        "created_at",
        "started_at",
        "finished_at",
    )
    inlines = [WebhookDeliveryInline]

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        return super().changelist_view(request, {**(extra_context or {}), "queue": queue_state()})


class BatchItemInline(_ReadOnlyInline):
    model = BatchItem
    fields = readonly_fields = ("custom_id", "status", "error")


@admin.register(Batch)
class BatchAdmin(ReadOnlyAdmin):
    list_display = ["public_id", "created_at", "environment", "api_client", "prompt", "status", "ended_at"]
    list_filter = ["status", "environment"]
    search_fields = ["public_id", "request_id"]
    list_select_related = ["api_client", "prompt"]
    date_hierarchy = "created_at"
    fields = readonly_fields = (
        "public_id",
        "status",
        "environment",
        "api_client",
        "prompt",
        "version",
        "provider_key",
        "provider_batch_ids",
        "request_id",
        "metadata",
        "callback_url",
        "created_at",
        "cancel_initiated_at",
        "ended_at",
    )
    inlines = [BatchItemInline, WebhookDeliveryInline]


class RegisteredFilter(admin.SimpleListFilter):
    title = "registered"
    parameter_name = "registered"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Registered"), ("no", "Not registered")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[DiscoveredPrompt]) -> QuerySet[DiscoveredPrompt]:
        if self.value() in ("yes", "no"):
            return queryset.filter(registered_version__isnull=self.value() == "no")
        return queryset


class RegisterForm(forms.Form):
    slug = forms.SlugField(max_length=80, help_text="The new prompt's slug, e.g. support-triage.")
    name = forms.CharField(max_length=200)


@admin.register(DiscoveredPrompt)
class DiscoveredPromptAdmin(ReadOnlyAdmin):
    """The system prompts free-form calls send, by the hash of their redacted text: who sends each, how
    often and at what cost. The text (placeholders, never personal data) is kept for the body retention
    after it was last seen. "Register as governed prompt" makes a new prompt with a draft holding it."""

    change_form_template = "admin/gateway/discoveredprompt/change_form.html"
    list_display = [
        "short_hash",
        "environment",
        "first_seen_at",
        "last_seen_at",
        "calls",
        "tokens",
        "cost_usd",
        "personal_data",
        "client_names",
        "registered",
    ]
    list_filter = ["environment", "personal_data", RegisteredFilter]
    search_fields = ["^system_hash"]
    search_help_text = "The hash, or its first characters."
    list_select_related = ["registered_version__prompt"]
    date_hierarchy = "last_seen_at"
    fields = readonly_fields = (
        "environment",
        "system_hash",
        "text",
        "characters",
        "text_expires_at",
        "first_seen_at",
        "last_seen_at",
        "last_model",
        "calls",
        "input_tokens",
        "output_tokens",
        "cost_usd",
        "personal_data",
        "client_names",
        "registered",
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[DiscoveredPrompt]:
        queryset: QuerySet[DiscoveredPrompt] = super().get_queryset(request)
        return queryset.prefetch_related("clients")

    @admin.display(description="hash", ordering="system_hash")
    def short_hash(self, obj: DiscoveredPrompt) -> str:
        return obj.short_hash

    @admin.display(description="tokens (in / out)")
    def tokens(self, obj: DiscoveredPrompt) -> str:
        return f"{obj.input_tokens} / {obj.output_tokens}"

    @admin.display(description="clients")
    def client_names(self, obj: DiscoveredPrompt) -> str:
        return ", ".join(sorted(client.name for client in obj.clients.all())) or "—"

    @admin.display(description="system prompt (redacted)")
    def text(self, obj: DiscoveredPrompt) -> str:
        if obj.text_purged:
            return "No longer kept: it was not seen for the body retention period."
        return obj.text_redacted or "(sent without a system prompt)"

    @admin.display(description="registered version")
    def registered(self, obj: DiscoveredPrompt) -> str:
        version = obj.registered_version
        if version is None:
            return "—"
        return format_html(
            '<a href="{}">{}</a>', reverse("admin:prompts_promptversion_change", args=[version.pk]), version
        )

    def may_register(self, request: HttpRequest, obj: DiscoveredPrompt) -> bool:
        return self.has_view_permission(request, obj) and request.user.has_perms(REGISTER_PERMISSIONS)

    def changeform_view(
        self, request: HttpRequest, object_id: str | None = None, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        extra_context = extra_context or {}
        obj = self.get_object(request, object_id) if object_id else None
        if obj is not None:
            extra_context["can_register"] = (
                self.may_register(request, obj) and obj.registered_version_id is None and bool(obj.text_redacted)
            )
        return super().changeform_view(request, object_id, form_url, extra_context)

    def get_urls(self) -> list[URLPattern]:
        return [
            path(
                "<int:object_id>/register/",
                self.admin_site.admin_view(self.register_view),
                name="gateway_discoveredprompt_register",
            ),
            *super().get_urls(),
        ]

    def register_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        discovered = get_object_or_404(DiscoveredPrompt, pk=object_id)
        if not self.may_register(request, discovered):
            raise PermissionDenied
        form = RegisterForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            user: User = request.user  # type: ignore[assignment]
            try:
                version = discovered_prompt_register(
                    actor=user, discovered=discovered, slug=form.cleaned_data["slug"], name=form.cleaned_data["name"]
                )
            except DomainError as exc:
                form.add_error(None, exc.detail)
            else:
                messages.success(request, f"Registered as {version}, a draft: edit it, then submit it for review.")
                return HttpResponseRedirect(reverse("admin:prompts_promptversion_change", args=[version.pk]))
        return action_page(
            self,
            request,
            obj=discovered,
            form=form,
            title=f"Register {discovered} as a governed prompt",
            submit="Register",
        )
