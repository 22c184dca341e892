"""Admin mixins shared by every app."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest
from django.template.response import TemplateResponse


class ReadOnlyMixin:
    """For admins that show and never change: no add, change or delete, for anyone."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReadOnlyAdmin(ReadOnlyMixin, admin.ModelAdmin):  # type: ignore[type-arg]
    """A read-only ModelAdmin."""


def action_page(
    model_admin: admin.ModelAdmin,  # type: ignore[type-arg]
    request: HttpRequest,
    *,
    obj: Any,
    form: forms.Form,
    title: str,
    submit: str,
    facts: list[tuple[str, str]] | None = None,
) -> TemplateResponse:
    """The page of an admin action on one object (a rotation, a revocation, a decision): what it acts on, the
    facts to know first, its form (a reason, a note) and one button. The service behind it checks again."""
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.model._meta,
        "title": title,
        "object": obj,
        "form": form,
        "submit": submit,
        "facts": facts or [],
    }
    return TemplateResponse(request, "admin/action.html", context)
