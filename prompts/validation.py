"""Checks on a version's content, run whenever a draft is saved and again when it is submitted."""

from __future__ import annotations

import re
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from prompts.choices import CacheTTL
from prompts.rendering import template_errors, variables_schema_errors
from prompts.secret_scan import find_secrets

MAX_TOKENS_LIMIT = 128_000
ROUTING_KEYS = {"rules", "classifier"}
RULE_KEYS = {"max_input_tokens", "model"}
CHECK_KEYS = {"required_patterns", "json_schema", "max_length"}


def _is_positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _routing_errors(routing: Any) -> list[str]:
    if not isinstance(routing, dict):
        return ["must be an object"]
    errors = [f"unknown key '{key}'" for key in sorted(set(routing) - ROUTING_KEYS)]
    rules = routing.get("rules", [])
    if not isinstance(rules, list):
        errors.append("rules must be a list")
        rules = []
    for index, rule in enumerate(rules):
        if not isinstance(rule, dict) or set(rule) != RULE_KEYS:
            errors.append(f"rule {index + 1} must have exactly max_input_tokens and model")
        elif not _is_positive_int(rule["max_input_tokens"]) or not isinstance(rule["model"], str) or not rule["model"]:
            errors.append(f"rule {index + 1}: max_input_tokens must be a positive integer and model a model id")
    classifier = routing.get("classifier")
    if classifier is not None:
        routes = classifier.get("routes") if isinstance(classifier, dict) else None
        if (
            not isinstance(classifier, dict)
            or not isinstance(classifier.get("prompt"), str)
            or not isinstance(routes, dict)
            or not routes
            or not all(isinstance(model, str) and model for model in routes.values())
        ):
            errors.append('classifier must be {"prompt": "<slug>", "routes": {"<answer>": "<model>", ...}}')
    return errors


def _output_check_errors(checks: Any) -> list[str]:
    if not isinstance(checks, dict):
        return ["must be an object"]
    errors = [f"unknown key '{key}'" for key in sorted(set(checks) - CHECK_KEYS)]
    patterns = checks.get("required_patterns", [])
    if not isinstance(patterns, list) or not all(isinstance(pattern, str) for pattern in patterns):
        errors.append("required_patterns must be a list of regular expressions")
    else:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                errors.append(f"required pattern {pattern!r} is not a valid regular expression: {exc}")
    schema = checks.get("json_schema")
    if schema is not None:
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as exc:
            errors.append(f"json_schema is not a valid JSON Schema: {exc.message}")
    max_length = checks.get("max_length")
    if max_length is not None and not _is_positive_int(max_length):
        errors.append("max_length must be a positive integer")
    return errors


def _redaction_errors(rules: Any) -> list[str]:
    if not isinstance(rules, dict) or set(rules) - {"terms", "patterns"}:
        return ['must be {"terms": [...], "patterns": [...]}']
    errors = []
    if not all(isinstance(term, str) and term.strip() for term in rules.get("terms", [])):
        errors.append("terms must be non-empty strings")
    for pattern in rules.get("patterns", []):
        try:
            re.compile(pattern)
        except (re.error, TypeError) as exc:
            errors.append(f"pattern {pattern!r} is not a valid regular expression: {exc}")
    return errors


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
    add("routing", _routing_errors(content["routing"]))
    add("output_checks", _output_check_errors(content["output_checks"]))
    add("redaction", _redaction_errors(content["redaction"]))
    for field, text in (
        ("system_prompt", content["system_prompt"]),
        ("user_template", content["user_template"]),
        ("change_summary", change_summary),
    ):
        if isinstance(text, str):
            add(field, find_secrets(text))
    return errors
