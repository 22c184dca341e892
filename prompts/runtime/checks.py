"""A version's output checks, run on the rehydrated answer."""

from __future__ import annotations

import json
import re
from typing import Any

from jsonschema import Draft202012Validator

from prompts.specs import OutputChecksSpec


def output_checks_run(checks: OutputChecksSpec, output: str) -> dict[str, Any]:
    """{"passed": bool, "failed": [names of the checks that failed]}."""
    failed: list[str] = []
    for pattern in checks.required_patterns:
        if not re.search(pattern, output):
            failed.append(f"required_pattern:{pattern}")
    if checks.max_length is not None and len(output) > checks.max_length:
        failed.append("max_length")
    schema = checks.json_schema
    if schema is not None:
        try:
            document = json.loads(output)
        except ValueError:
            failed.append("json_schema:not_json")
        else:
            if any(True for _ in Draft202012Validator(schema).iter_errors(document)):
                failed.append("json_schema")
    return {"passed": not failed, "failed": failed}
