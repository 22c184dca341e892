"""The playground's admin page (evaluations.playground does the work): a form made from the version's
variables schema, and the try's result."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.views.decorators.http import require_http_methods

from core.errors import DomainError, InvalidVariables
from evaluations import playground
from prompts.choices import VariableType
from prompts.models import PromptVersion

_BLANK = [("", "—")]
_BOOLEANS = [("true", "true"), ("false", "false")]


def _field(variable: dict[str, Any]) -> forms.Field:
    """A form field for one variable. Only the type is read here: length, choices and requiredness are
    checked by the pipeline's own validation (prompts.rendering), whose messages the form shows."""
    kind = variable.get("type", VariableType.STRING)
    required = bool(variable.get("required", True))
    help_text = "Sensitive: replaced whole by a placeholder before it is sent." if variable.get("sensitive") else ""
    common: dict[str, Any] = {"required": required, "help_text": help_text}
    if kind == VariableType.INTEGER:
        return forms.IntegerField(**common)
    if kind == VariableType.NUMBER:
        return forms.FloatField(**common)
    if kind == VariableType.BOOLEAN:
        return forms.TypedChoiceField(
            choices=_BLANK + _BOOLEANS, coerce=lambda value: value == "true", empty_value=None, **common
        )
    if kind == VariableType.ENUM:
        choices = [(str(choice), str(choice)) for choice in variable.get("choices", [])]
        return forms.TypedChoiceField(choices=_BLANK + choices, empty_value=None, **common)
    return forms.CharField(
        strip=False, empty_value=None, widget=forms.Textarea(attrs={"rows": 3, "cols": 80}), **common
    )


class PlaygroundForm(forms.Form):
    """The version's variables, one field each."""

    def __init__(self, *args: Any, version: PromptVersion, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for variable in version.variables:
            self.fields[variable["name"]] = _field(variable)

    def variables(self) -> dict[str, Any]:
        return {name: value for name, value in self.cleaned_data.items() if value is not None}


def _initial(values: dict[str, Any]) -> dict[str, Any]:
    return {
        name: ("true" if value else "false") if isinstance(value, bool) else value for name, value in values.items()
    }


def _page(request: HttpRequest, version: PromptVersion, status: int = 200, **context: Any) -> TemplateResponse:
    page = {
        **admin.site.each_context(request),
        "title": f"Playground: {version}",
        "version": version,
        "opts": PromptVersion._meta,
        "may_view_ledger": request.user.has_perm("usage.view_usagerecord"),
        **context,
    }
    return TemplateResponse(request, "admin/evaluations/playground.html", page, status=status)


@require_http_methods(["GET", "POST"])
def playground_view(request: HttpRequest, version_id: int) -> HttpResponse:
    actor: User = request.user  # type: ignore[assignment]
    version = get_object_or_404(PromptVersion.objects.select_related("prompt"), pk=version_id)
    try:
        version = playground.playground_open(actor=actor, version=version)
    except DomainError as exc:
        if exc.status == 403:
            raise PermissionDenied(exc.detail) from exc
        return _page(request, version, status=exc.status, refusal=exc)
    samples = playground.playground_samples(version)
    if request.method == "GET":
        chosen = next((case for case in samples if str(case.pk) == request.GET.get("case")), None)
        sample = playground.playground_sample_variables(version, chosen or (samples[0] if samples else None))
        form = PlaygroundForm(initial=_initial(sample), version=version)
        return _page(request, version, form=form, samples=samples)
    form = PlaygroundForm(request.POST, version=version)
    if not form.is_valid():
        return _page(request, version, status=400, form=form, samples=samples)
    try:
        run = playground.playground_run(actor=actor, version=version, variables=form.variables())
    except InvalidVariables as exc:
        for name, problem in exc.errors.items():
            form.add_error(name if name in form.fields else None, problem)
        return _page(request, version, status=400, form=form, samples=samples)
    except DomainError as exc:  # refused before anything was reserved: the rate limit, the version's status
        if exc.status == 403:
            raise PermissionDenied(exc.detail) from exc
        response = _page(request, version, status=exc.status, form=form, samples=samples, refusal=exc)
        if retry_after := getattr(exc, "retry_after", None):
            response["Retry-After"] = str(retry_after)
        return response
    status = run.error.status if run.error is not None else 200
    return _page(request, version, status=status, form=form, samples=samples, run=run)
