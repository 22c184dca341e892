"""The gateway's records in the admin, read-only: the request log, jobs with the queue's state, batches."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse

from core.admin import ReadOnlyAdmin
from gateway.models import Batch, BatchItem, Job, Run, WebhookDelivery
from gateway.selectors import queue_state


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
