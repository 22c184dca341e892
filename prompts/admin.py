"""The prompt registry in the admin, for authors, approvers and auditors.

Every change goes through `prompts.services`: the admin only collects input (and a reason) and shows
the outcome. Approvers see a diff against the live and the previous version before they decide.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from simple_history.admin import SimpleHistoryAdmin

from core.admin import ReadOnlyMixin
from core.environments import Environment
from core.errors import DomainError
from prompts import hooks, selectors, services
from prompts.choices import DataCategory, VersionStatus
from prompts.models import CONTENT_FIELDS, Prompt, PromptVersion, Release
from prompts.validation import version_content_errors
from usage.dashboard import chart_spec

# --- prompts ---------------------------------------------------------------------------------------------


class PromptForm(forms.ModelForm):  # type: ignore[type-arg]
    data_categories = forms.MultipleChoiceField(
        choices=DataCategory.choices, widget=forms.CheckboxSelectMultiple, required=False
    )
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}), required=False, help_text="Why this change (required when editing)."
    )

    class Meta:
        model = Prompt
        fields = ["slug", "name", "purpose", "owner", "team", "data_categories"]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.instance.pk and not (cleaned.get("reason") or "").strip():
            self.add_error("reason", "Say why the prompt changes: the reason goes into its history.")
        return cleaned


class VersionChoiceField(forms.ModelChoiceField):  # type: ignore[type-arg]
    def label_from_instance(self, obj: PromptVersion) -> str:
        return f"v{obj.number} ({obj.get_status_display().lower()})"


class CompareForm(forms.Form):
    """Two versions of one prompt; any other id (another prompt's version, not a number) is refused."""

    a = VersionChoiceField(queryset=PromptVersion.objects.none(), label="Compare", empty_label=None)
    b = VersionChoiceField(queryset=PromptVersion.objects.none(), label="with", empty_label=None)

    def __init__(self, *args: Any, prompt: Prompt, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        versions = PromptVersion.objects.filter(prompt=prompt).select_related("author").order_by("-number")
        for name in ("a", "b"):
            self.fields[name].queryset = versions  # type: ignore[attr-defined]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if cleaned.get("a") is not None and cleaned.get("a") == cleaned.get("b"):
            raise forms.ValidationError("Pick two different versions.", code="same_version")
        return cleaned


def _compare_defaults(versions: list[PromptVersion]) -> dict[str, int]:
    """The previous version against the newest one, as most comparisons go."""
    if len(versions) < 2:
        return {}
    return {"a": versions[1].pk, "b": versions[0].pk}


def _compare_defaults_for(prompt: Prompt) -> dict[str, int]:
    return _compare_defaults(list(PromptVersion.objects.filter(prompt=prompt).order_by("-number")[:2]))


@admin.register(Prompt)
class PromptAdmin(SimpleHistoryAdmin):  # type: ignore[misc]
    """A prompt's page: its versions and the next steps its reader may take, what is live where, evaluations,
    the last 30 days of usage and a comparison of any two versions; the prompt's own fields below."""

    form = PromptForm
    change_form_template = "admin/prompts/prompt/change_form.html"
    list_display = ["slug", "name", "owner", "team", "categories", "live", "pending_reviews"]
    search_fields = ["slug", "name", "team", "purpose"]
    list_filter = ["team"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Prompt]:
        queryset: QuerySet[Prompt] = super().get_queryset(request)
        return (
            queryset.select_related("owner")
            .prefetch_related("releases__version")
            .annotate(pending=Count("versions", filter=Q(versions__status=VersionStatus.IN_REVIEW)))
        )

    def get_readonly_fields(self, request: HttpRequest, obj: Prompt | None = None) -> list[str]:
        return ["slug"] if obj is not None else []

    @admin.display(description="data categories")
    def categories(self, obj: Prompt) -> str:
        return ", ".join(obj.data_category_labels()) or "—"

    @admin.display(description="live (dev / staging / production)")
    def live(self, obj: Prompt) -> str:
        by_environment = {release.environment: release.version.number for release in obj.releases.all()}
        return " / ".join(f"v{by_environment[e]}" if e in by_environment else "—" for e in Environment.values)

    @admin.display(description="pending reviews", ordering="pending")
    def pending_reviews(self, obj: Prompt) -> int:
        return obj.pending  # type: ignore[attr-defined, no-any-return]

    def save_model(self, request: HttpRequest, obj: Prompt, form: forms.ModelForm, change: bool) -> None:  # type: ignore[type-arg]
        data = form.cleaned_data
        user: User = request.user  # type: ignore[assignment]
        if change:
            fields = {name: data[name] for name in form.changed_data if name in services.PROMPT_FIELDS}
            # `obj` already carries the form's values; the service compares against what is stored.
            stored = Prompt.objects.get(pk=obj.pk)
            services.prompt_update(actor=user, prompt=stored, reason=data["reason"], **fields)
        else:
            created = services.prompt_create(
                actor=user,
                slug=data["slug"],
                name=data["name"],
                purpose=data["purpose"],
                owner=data["owner"],
                team=data["team"],
                data_categories=data["data_categories"],
            )
            obj.pk = created.pk
            obj._state.adding = False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # prompts stay in the inventory; their versions are retired instead

    def changeform_view(
        self, request: HttpRequest, object_id: str | None = None, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        extra_context = extra_context or {}
        if object_id:
            prompt = self.get_object(request, object_id)
            if prompt is not None and self.has_view_or_change_permission(request, prompt):
                extra_context.update(self._page_context(request, prompt))
        return super().changeform_view(request, object_id, form_url, extra_context)  # type: ignore[no-any-return]

    def _page_context(self, request: HttpRequest, prompt: Prompt) -> dict[str, Any]:
        page = selectors.prompt_page(prompt=prompt)
        user: User = request.user  # type: ignore[assignment]
        return {
            "page": page,
            "version_rows": [
                {
                    "version": version,
                    "actions": _allowed_actions(user, version),
                    "evaluation": page.evaluations.get(version.pk),
                    "live_in": page.live_numbers.get(version.pk, []),
                }
                for version in page.versions
            ],
            "compare_form": CompareForm(prompt=prompt, initial=_compare_defaults(page.versions)),
            "can_release": user.has_perm("prompts.release_promptversion"),
            "usage_chart": chart_spec(
                type="bar",
                labels=[day.key.isoformat() for day in page.usage.days],
                datasets=[{"label": "Cost (USD)", "data": [day.cost_usd for day in page.usage.days]}],
                unit="$",
            ),
        }

    def get_urls(self) -> list[URLPattern]:
        custom = [
            path(
                "<int:object_id>/compare/",
                self.admin_site.admin_view(self.compare_view),
                name="prompts_prompt_compare",
            )
        ]
        return [*custom, *super().get_urls()]

    def compare_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        """Two versions of the prompt, picked with `?a=<pk>&b=<pk>`: what changes from a to b. Without
        them, the picker; with versions that are not the prompt's, or the same one twice, the picker
        with the reason (400)."""
        prompt = get_object_or_404(Prompt, pk=object_id)
        # The comparison prints the versions' content: for those who may read it on the versions' own pages.
        versions_admin = self.admin_site.get_model_admin(PromptVersion)
        if not self.has_view_or_change_permission(request, prompt) or not versions_admin.has_view_permission(request):
            raise PermissionDenied
        bound = "a" in request.GET or "b" in request.GET
        form = CompareForm(request.GET if bound else None, prompt=prompt, initial=_compare_defaults_for(prompt))
        old = new = None
        if form.is_valid():
            old, new = form.cleaned_data["a"], form.cleaned_data["b"]
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "original": prompt,
            "title": f"Compare versions of {prompt}",
            "prompt": prompt,
            "form": form,
            "old": old,
            "new": new,
            "diffs": selectors.version_diff(old, new) if old is not None and new is not None else None,
        }
        status = 400 if bound and not form.is_valid() else 200
        return TemplateResponse(request, "admin/prompts/prompt/compare.html", context, status=status)


# --- versions -------------------------------------------------------------------------------------------


class VersionForm(forms.ModelForm):  # type: ignore[type-arg]
    class Meta:
        model = PromptVersion
        fields = ["prompt", *CONTENT_FIELDS, "change_summary"]
        widgets = {
            "system_prompt": forms.Textarea(attrs={"rows": 10, "cols": 100}),
            "user_template": forms.Textarea(attrs={"rows": 6, "cols": 100}),
            "change_summary": forms.Textarea(attrs={"rows": 2, "cols": 100}),
        }

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.errors:
            return cleaned
        content = {field: cleaned.get(field) for field in CONTENT_FIELDS}
        for field, problems in version_content_errors(content, cleaned.get("change_summary") or "").items():
            for problem in problems:
                self.add_error(field if field in self.fields else None, problem)
        return cleaned


class TransitionForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3, "cols": 80}), required=False)
    environment = forms.ChoiceField(choices=Environment.choices, required=False)


# action → (button label, permission, allowed statuses, reason required, needs environment)
ACTIONS: dict[str, tuple[str, str, set[str], bool, bool]] = {
    "submit": ("Submit for review", "prompts.submit_promptversion", {VersionStatus.DRAFT}, False, False),
    "approve": ("Approve", "prompts.review_promptversion", {VersionStatus.IN_REVIEW}, True, False),
    "reject": ("Reject", "prompts.review_promptversion", {VersionStatus.IN_REVIEW}, True, False),
    "release": ("Release", "prompts.release_promptversion", {VersionStatus.APPROVED}, True, True),
    "retire": ("Retire", "prompts.retire_promptversion", {VersionStatus.APPROVED}, True, False),
    "new_draft": ("New draft from this version", "prompts.add_promptversion", set(VersionStatus.values), False, False),
}
EVALUATE = "evaluate"


def _actions() -> dict[str, tuple[str, str, set[str], bool, bool]]:
    """ACTIONS and "Run evaluation", offered by whichever app evaluates versions (prompts.hooks)."""
    evaluations = hooks.evaluations()
    return {**ACTIONS, EVALUATE: ("Run evaluation", evaluations.permission, set(evaluations.evaluable), False, False)}


def _allowed_actions(user: User, version: PromptVersion) -> list[tuple[str, str]]:
    """(action, button label) for the next steps `user` may take on `version`: its status allows them, the
    user holds the permission, and nobody reviews their own version."""
    return [
        (name, label)
        for name, (label, permission, statuses, _, _) in _actions().items()
        if version.status in statuses
        and user.has_perm(permission)
        and not (name in ("approve", "reject") and version.author_id == user.pk)
    ]


def _run(action: str, user: User, version: PromptVersion, data: dict[str, Any]) -> PromptVersion:
    reason, environment = data.get("reason") or "", data.get("environment") or ""
    calls: dict[str, Callable[[], Any]] = {
        "submit": lambda: services.prompt_version_submit(actor=user, version=version, reason=reason),
        "approve": lambda: services.prompt_version_approve(actor=user, version=version, note=reason),
        "reject": lambda: services.prompt_version_reject(actor=user, version=version, note=reason),
        "release": lambda: (
            services.prompt_version_release(actor=user, version=version, environment=environment, reason=reason).version
        ),
        "retire": lambda: services.prompt_version_retire(actor=user, version=version, reason=reason),
        "new_draft": lambda: services.prompt_version_new_draft(actor=user, source=version),
        EVALUATE: lambda: hooks.evaluations().start(actor=user, version=version).version,
    }
    result: PromptVersion = calls[action]()
    return result


@admin.register(PromptVersion)
class PromptVersionAdmin(SimpleHistoryAdmin):  # type: ignore[misc]
    form = VersionForm
    change_form_template = "admin/prompts/promptversion/change_form.html"
    list_display = ["__str__", "status", "model", "author", "submitted_at", "reviewed_by", "reviewed_at"]
    list_filter = ["status", "prompt"]
    search_fields = ["prompt__slug", "change_summary"]
    list_select_related = ["prompt", "author", "reviewed_by"]
    readonly_fields_always = [
        "number",
        "status",
        "content_hash",
        "based_on",
        "author",
        "created_at",
        "submitted_by",
        "submitted_at",
        "reviewed_by",
        "reviewed_at",
        "review_note",
        "retired_by",
        "retired_at",
        "retire_reason",
    ]

    def _editable(self, request: HttpRequest, obj: PromptVersion | None) -> bool:
        """Content is editable only in a draft, and only by its author."""
        if obj is None:
            return True
        return obj.status == VersionStatus.DRAFT and obj.author_id == request.user.pk

    def get_readonly_fields(self, request: HttpRequest, obj: PromptVersion | None = None) -> list[str]:
        if obj is None:
            return []
        if self._editable(request, obj):
            return ["prompt", *self.readonly_fields_always]
        return ["prompt", *CONTENT_FIELDS, "change_summary", *self.readonly_fields_always]

    def get_fields(self, request: HttpRequest, obj: PromptVersion | None = None) -> list[str]:
        base = ["prompt", *CONTENT_FIELDS, "change_summary"]
        return base if obj is None else [*base, *self.readonly_fields_always]

    def has_change_permission(self, request: HttpRequest, obj: PromptVersion | None = None) -> bool:
        if obj is not None and not self._editable(request, obj):
            return False
        return bool(super().has_change_permission(request, obj))

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # versions are the change record

    def save_model(self, request: HttpRequest, obj: PromptVersion, form: forms.ModelForm, change: bool) -> None:  # type: ignore[type-arg]
        data = form.cleaned_data
        content = {field: data[field] for field in CONTENT_FIELDS}
        user: User = request.user  # type: ignore[assignment]
        if change:
            services.prompt_version_update(
                actor=user, version=obj, content=content, change_summary=data["change_summary"]
            )
        else:
            created = services.prompt_version_create(
                actor=user, prompt=data["prompt"], content=content, change_summary=data["change_summary"]
            )
            obj.pk = created.pk
            obj._state.adding = False

    def changeform_view(
        self, request: HttpRequest, object_id: str | None = None, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        extra_context = extra_context or {}
        if object_id:
            # The review context counts a version in review at Anthropic (an upstream call, a ledger row):
            # only for those who may see the page. The others, and an id that names no version, get Django's
            # own answer below (refused, or "does not exist") with nothing done on the way.
            version = self.get_object(request, object_id)
            if version is not None and self.has_view_or_change_permission(request, version):
                extra_context.update(self._review_context(request, version))
        return super().changeform_view(request, object_id, form_url, extra_context)  # type: ignore[no-any-return]

    def _review_context(self, request: HttpRequest, version: PromptVersion) -> dict[str, Any]:
        live = selectors.live_reference(version)
        previous = selectors.previous_version(version)
        actions = _allowed_actions(request.user, version)  # type: ignore[arg-type]
        return {
            "version": version,
            "live_environment": live[0] if live else None,
            "live_version": live[1] if live else None,
            "diff_live": selectors.version_diff(live[1], version) if live and live[1].pk != version.pk else None,
            "previous": previous,
            "diff_previous": selectors.version_diff(previous, version),
            "live_in": sorted(selectors.live_versions(version.prompt_id).items()),
            "transition_actions": actions,
            "estimate": selectors.version_cost_estimate(version),
            # Counted at Anthropic the first time a version in review is shown, stored and reused after.
            "cost_of_change": hooks.costs().of_change(version, count=version.status == VersionStatus.IN_REVIEW),
            "evaluation": hooks.evaluations().latest(version),
            "evaluation_required": settings.TOLLGATE_APPROVAL_REQUIRES_EVALUATION,
        }

    def get_urls(self) -> list[URLPattern]:
        custom = [
            path(
                "<int:object_id>/do/<str:action>/",
                self.admin_site.admin_view(self.transition_view),
                name="prompts_promptversion_transition",
            )
        ]
        return [*custom, *super().get_urls()]

    def transition_view(self, request: HttpRequest, object_id: int, action: str) -> HttpResponse:
        if action not in _actions():
            raise PermissionDenied
        version = get_object_or_404(PromptVersion.objects.select_related("prompt"), pk=object_id)
        label, permission, _, reason_required, needs_environment = _actions()[action]
        # The action's own permission, for its page as for the button (the service checks it again).
        if not self.has_view_permission(request, version) or not request.user.has_perm(permission):
            raise PermissionDenied
        form = TransitionForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            user: User = request.user  # type: ignore[assignment]
            try:
                result = _run(action, user, version, form.cleaned_data)
            except DomainError as exc:
                form.add_error(None, exc.detail)
            else:
                messages.success(request, f"{label}: done for {version}.")
                return HttpResponseRedirect(reverse("admin:prompts_promptversion_change", args=[result.pk]))
        context = {
            **self.admin_site.each_context(request),
            **self._review_context(request, version),
            "opts": self.model._meta,
            "title": f"{label}: {version}",
            "form": form,
            "action": action,
            "action_label": label,
            "reason_required": reason_required,
            "needs_environment": needs_environment,
        }
        return TemplateResponse(request, "admin/prompts/promptversion/transition.html", context)


# --- releases -------------------------------------------------------------------------------------------


@admin.register(Release)
class ReleaseAdmin(ReadOnlyMixin, SimpleHistoryAdmin):  # type: ignore[misc]
    """Releases are made and rolled back from version pages and the rollback page, never edited here."""

    list_display = ["prompt", "environment", "version_number", "released_by", "released_at", "is_rollback", "reason"]
    list_filter = ["environment", "is_rollback"]
    list_select_related = ["prompt", "version", "released_by"]
    change_form_template = "admin/prompts/release/change_form.html"

    @admin.display(description="version")
    def version_number(self, obj: Release) -> str:
        return f"v{obj.version.number}"

    def get_urls(self) -> list[URLPattern]:
        custom = [
            path(
                "<int:object_id>/rollback/",
                self.admin_site.admin_view(self.rollback_view),
                name="prompts_release_rollback",
            )
        ]
        return [*custom, *super().get_urls()]

    def rollback_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        release = get_object_or_404(
            Release.objects.select_related("prompt", "version", "previous_version"), pk=object_id
        )
        if not request.user.has_perm("prompts.release_promptversion"):
            raise PermissionDenied
        form = TransitionForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            user: User = request.user  # type: ignore[assignment]
            try:
                services.release_rollback(actor=user, release=release, reason=form.cleaned_data["reason"])
            except DomainError as exc:
                form.add_error(None, exc.detail)
            else:
                messages.success(request, f"{release.prompt} in {release.environment} rolled back.")
                return HttpResponseRedirect(reverse("admin:prompts_release_changelist"))
        diffs = selectors.version_diff(release.version, release.previous_version) if release.previous_version else []
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"Roll back {release.prompt} in {release.environment}",
            "release": release,
            "form": form,
            "diff": diffs,
        }
        return TemplateResponse(request, "admin/prompts/release/rollback.html", context)
