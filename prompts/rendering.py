"""Validating a version's variables schema and rendering a version with a caller's variables.

The system prompt is static; the user message is the template with each variable inserted as
delimited data (`<name>…</name>`). Substitution is one pass over the template, so a value is never
read as template syntax, and a value cannot close its own delimiter, add a message or change a role:
the result is always exactly one user message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from core.errors import InvalidVariables
from prompts.choices import VariableType

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
ANY_PLACEHOLDER = re.compile(r"\{\{.*?\}\}", re.DOTALL)
VARIABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
VARIABLE_KEYS = {"name", "type", "required", "max_length", "sensitive", "choices"}
# NUL cannot be stored (PostgreSQL text) and an unpaired surrogate cannot be encoded to be sent: text
# holding either is refused before anything is reserved or sent.
UNSENDABLE = re.compile(r"[\x00\ud800-\udfff]")


def unsendable(text: str) -> str | None:
    """Why `text` can be neither sent nor stored, or None when it can."""
    if UNSENDABLE.search(text):
        return "contains a character that cannot be sent (NUL or an unpaired surrogate)"
    return None


@dataclass(frozen=True)
class RenderedPrompt:
    """What a version sends: its static system prompt and one user message."""

    system: str
    messages: list[dict[str, str]]


def variables_schema_errors(variables: Any) -> list[str]:
    """Problems with a variables schema, one sentence each (empty when it is valid)."""
    if not isinstance(variables, list):
        return ["must be a list of variable definitions"]
    errors: list[str] = []
    seen: set[str] = set()
    types = set(VariableType.values)
    for index, variable in enumerate(variables):
        where = f"variable {index + 1}"
        if not isinstance(variable, dict):
            errors.append(f"{where} must be an object")
            continue
        name = variable.get("name")
        if not isinstance(name, str) or not VARIABLE_NAME.match(name):
            errors.append(f"{where}: name must be an identifier (letters, digits, underscore)")
            continue
        where = f"variable '{name}'"
        if name in seen:
            errors.append(f"{where} is declared twice")
        seen.add(name)
        unknown = set(variable) - VARIABLE_KEYS
        if unknown:
            errors.append(f"{where}: unknown keys {sorted(unknown)}")
        kind = variable.get("type", VariableType.STRING)
        if kind not in types:
            errors.append(f"{where}: type must be one of {sorted(types)}")
        max_length = variable.get("max_length")
        if max_length is not None and (
            isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1
        ):
            errors.append(f"{where}: max_length must be a positive integer")
        for flag in ("required", "sensitive"):
            if flag in variable and not isinstance(variable[flag], bool):
                errors.append(f"{where}: {flag} must be true or false")
        choices = variable.get("choices")
        if kind == VariableType.ENUM:
            if not isinstance(choices, list) or not choices or not all(isinstance(c, str) for c in choices):
                errors.append(f"{where}: an enum needs a non-empty list of string choices")
        elif choices is not None:
            errors.append(f"{where}: choices apply only to enum variables")
    return errors


def template_errors(system_prompt: str, user_template: str, variables: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Placeholders must be declared; the system prompt takes none (it is the cacheable prefix)."""
    errors: dict[str, list[str]] = {}
    if ANY_PLACEHOLDER.search(system_prompt):
        errors["system_prompt"] = ["must not contain {{ placeholders }}: variables go in the user template"]
    declared = {variable.get("name") for variable in variables if isinstance(variable, dict)}
    used = set(PLACEHOLDER.findall(user_template))
    undeclared = sorted(used - declared)
    if undeclared:
        errors.setdefault("user_template", []).append(f"uses undeclared variables: {', '.join(undeclared)}")
    malformed = [m.group(0) for m in ANY_PLACEHOLDER.finditer(user_template) if not PLACEHOLDER.fullmatch(m.group(0))]
    if malformed:
        errors.setdefault("user_template", []).append(f"has malformed placeholders: {', '.join(malformed)}")
    unused = sorted(name for name in declared - used if isinstance(name, str))
    if unused:
        errors.setdefault("variables", []).append(f"declared but not used in the template: {', '.join(unused)}")
    return errors


def _check_value(variable: dict[str, Any], value: Any) -> str | None:
    kind = variable.get("type", VariableType.STRING)
    if isinstance(value, str) and (problem := unsendable(value)):
        return problem
    if kind in (VariableType.STRING, VariableType.ENUM) and not isinstance(value, str):
        return "must be a string"
    if kind == VariableType.INTEGER and (isinstance(value, bool) or not isinstance(value, int)):
        return "must be an integer"
    if kind == VariableType.NUMBER and (isinstance(value, bool) or not isinstance(value, int | float)):
        return "must be a number"
    if kind == VariableType.BOOLEAN and not isinstance(value, bool):
        return "must be true or false"
    if kind == VariableType.ENUM and value not in variable.get("choices", []):
        return f"must be one of: {', '.join(variable.get('choices', []))}"
    max_length = variable.get("max_length")
    if max_length is not None and len(str(value)) > max_length:
        return f"is longer than {max_length} characters"
    return None


def variables_validate(schema: list[dict[str, Any]], values: Any) -> dict[str, Any]:
    """The caller's variables checked against the schema; raises InvalidVariables naming each problem.

    Error messages describe the problem, never the value (it may be sensitive).
    """
    if not isinstance(values, dict):
        raise InvalidVariables({"variables": "must be an object mapping variable names to values"})
    errors: dict[str, str] = {}
    declared = {variable["name"]: variable for variable in schema}
    for name in values:
        if name not in declared:
            errors[str(name)[:64]] = "is not a variable of this prompt"
    for name, variable in declared.items():
        if name not in values or values[name] is None:
            if variable.get("required", True):
                errors[name] = "is required"
            continue
        problem = _check_value(variable, values[name])
        if problem:
            errors[name] = problem
    if errors:
        raise InvalidVariables(errors)
    return values


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _delimited(name: str, value: Any) -> str:
    # A value cannot end its own block early: its closing tag is escaped wherever it occurs inside.
    text = _as_text(value).replace(f"</{name}>", f"&lt;/{name}&gt;")
    return f"<{name}>\n{text}\n</{name}>"


def render(*, system_prompt: str, user_template: str, schema: list[dict[str, Any]], variables: Any) -> RenderedPrompt:
    """Validate `variables` and build the system prompt and the single user message."""
    return render_values(
        system_prompt=system_prompt, user_template=user_template, values=variables_validate(schema, variables)
    )


def render_values(*, system_prompt: str, user_template: str, values: dict[str, Any]) -> RenderedPrompt:
    """Build the prompt from values already validated (the run pipeline renders redacted values, which
    need not fit the schema: a sensitive integer becomes a placeholder)."""

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if values.get(name) is None:
            return ""
        return _delimited(name, values[name])

    content = PLACEHOLDER.sub(substitute, user_template)
    return RenderedPrompt(system=system_prompt, messages=[{"role": "user", "content": content}])
