"""Checks on a version's content, run whenever a draft is saved and again when it is submitted."""

from __future__ import annotations

from typing import Any

from prompts.choices import CacheTTL
from prompts.rendering import template_errors, variables_schema_errors
from prompts.secret_scan import find_secrets
from prompts.specs import FIELD_SPECS, spec_errors

MAX_TOKENS_LIMIT = 128_000


def _is_positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def version_content_errors(content: dict[str, Any], change_summary: str) -> dict[str, list[str]]:
    """Every problem with a version's content, by field. Empty when the version may be saved."""
    errors: dict[str, list[str]] = {}

    def add(field: str, problems: list[str]) -> None:
        if problems:
            errors.setdefault(field, []).extend(problems)

    for field in ("system_prompt", "user_template"):
        if not isinstance(content[field], str) or not content[field].strip():
            add(field, ["is required"])
    if not change_summary.strip():
        add("change_summary", ["is required: say what changed and why"])
    add("variables", variables_schema_errors(content["variables"]))
    if not errors.get("variables") and isinstance(content["system_prompt"], str):
        for field, problems in template_errors(
            content["system_prompt"], content["user_template"], content["variables"]
        ).items():
            add(field, problems)
    if not isinstance(content["model"], str) or not content["model"].strip():
        add("model", ["is required"])
    if not _is_positive_int(content["max_tokens"]) or content["max_tokens"] > MAX_TOKENS_LIMIT:
        add("max_tokens", [f"must be between 1 and {MAX_TOKENS_LIMIT}"])
    stops = content["stop_sequences"]
    if not isinstance(stops, list) or not all(isinstance(stop, str) and stop for stop in stops):
        add("stop_sequences", ["must be a list of non-empty strings"])
    if content["cache_ttl"] not in CacheTTL.values:
        add("cache_ttl", [f"must be one of {', '.join(CacheTTL.values)}"])
    for field, spec in FIELD_SPECS.items():
        add(field, spec_errors(spec, content[field]))
    for field, text in (
        ("system_prompt", content["system_prompt"]),
        ("user_template", content["user_template"]),
        ("change_summary", change_summary),
    ):
        if isinstance(text, str):
            add(field, find_secrets(text))
    return errors
