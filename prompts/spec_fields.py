"""Model and form fields for a JSON setting described by a spec (`prompts.specs`).

The spec is the one description of the setting: the admin field validates through it and shows help
written from its fields and descriptions. Migrations see a plain JSONField without the help, so that
rewording a description in the spec needs no migration.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.db import models
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from prompts.specs import Spec, spec_errors, spec_help_lines


def spec_help_html(spec: type[Spec]) -> SafeString:
    """The spec's purpose and its keys as a nested list (the admin shows help text as HTML)."""

    def items(lines: list[tuple[int, str]], depth: int) -> SafeString:
        parts, index = [], 0
        while index < len(lines):
            text, end = lines[index][1], index + 1
            while end < len(lines) and lines[end][0] > depth:
                end += 1
            nested = items(lines[index + 1 : end], depth + 1) if end > index + 1 else ""
            parts.append(format_html("<li>{}{}</li>", text, nested))
            index = end
        return format_html("<ul>{}</ul>", format_html_join("", "{}", ((part,) for part in parts)))

    summary = (spec.__doc__ or "").strip().splitlines()[0]
    return format_html("{} A JSON object; every key is optional:{}", summary, items(spec_help_lines(spec), 0))


class SpecFormField(forms.JSONField):
    """A JSON text box checked against a spec; left empty, it means the empty object (no settings)."""

    def __init__(self, *, spec: type[Spec], **kwargs: Any) -> None:
        self.spec = spec
        kwargs["help_text"] = spec_help_html(spec)
        super().__init__(**kwargs)

    def to_python(self, value: Any) -> Any:
        if not self.disabled and value in self.empty_values:
            return {}
        return super().to_python(value)

    def validate(self, value: Any) -> None:
        super().validate(value)
        errors = spec_errors(self.spec, value)
        if errors:
            raise ValidationError(errors)


class SpecJSONField(models.JSONField):
    """A JSONField whose help and admin form field come from its spec."""

    def __init__(self, *args: Any, spec: type[Spec] | None = None, **kwargs: Any) -> None:
        self.spec = spec
        if spec is not None:
            kwargs.setdefault("help_text", spec_help_html(spec))
        super().__init__(*args, **kwargs)

    def deconstruct(self) -> Any:
        name, _, args, kwargs = super().deconstruct()
        kwargs.pop("help_text", None)
        return name, "django.db.models.JSONField", args, kwargs

    def formfield(
        self,
        form_class: type[forms.Field] | None = None,
        choices_form_class: type[forms.ChoiceField] | None = None,
        **kwargs: Any,
    ) -> forms.Field | None:
        if self.spec is not None and form_class is None:
            form_class, kwargs = SpecFormField, {"spec": self.spec, **kwargs}
        return super().formfield(form_class=form_class, choices_form_class=choices_form_class, **kwargs)
