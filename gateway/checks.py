"""Checks on an answer: a version's output checks (run on every rehydrated answer) and an evaluation
case's expectations. One implementation judges both; each names its failures its own way, without
quoting the answer."""

from __future__ import annotations

import json
import re
from difflib import SequenceMatcher
from typing import Any

from jsonschema import Draft202012Validator

from prompts.specs import OutputChecksSpec

DEFAULT_SIMILARITY = 0.8
NOT_JSON = "not_json"
_WORDS = re.compile(r"\w+")


def pattern_found(pattern: str, answer: str) -> bool:
    return re.search(pattern, answer) is not None


def json_schema_miss(schema: Any, answer: str) -> str | None:
    """None when the answer is JSON valid under the schema; NOT_JSON when it is not JSON; else where and
    how it first fails ("$.priority fails 'type'")."""
    try:
        document = json.loads(answer)
    except ValueError:
        return NOT_JSON
    error = next(Draft202012Validator(schema).iter_errors(document), None)
    return None if error is None else f"{error.json_path} fails '{error.validator}'"


def similarity(answer: str, reference: str) -> float:
    """How alike two texts are, 0 to 1: the matching share of their word sequences (case and
    punctuation ignored). Lexical, not semantic: a reference answer should be worded as expected."""
    return SequenceMatcher(
        None, _WORDS.findall(answer.lower()), _WORDS.findall(reference.lower()), autojunk=False
    ).ratio()


def output_checks_run(checks: OutputChecksSpec, output: str) -> dict[str, Any]:
    """{"passed": bool, "failed": [names of the checks that failed]}."""
    failed: list[str] = []
    for pattern in checks.required_patterns:
        if not pattern_found(pattern, output):
            failed.append(f"required_pattern:{pattern}")
    if checks.max_length is not None and len(output) > checks.max_length:
        failed.append("max_length")
    if checks.json_schema is not None:
        miss = json_schema_miss(checks.json_schema, output)
        if miss is not None:
            failed.append("json_schema:not_json" if miss == NOT_JSON else "json_schema")
    return {"passed": not failed, "failed": failed}


def expectation_failures(expectations: list[dict[str, Any]], answer: str) -> list[str]:
    """The expectations of an evaluation case the answer misses, each named without quoting the answer."""
    failures = []
    for expectation in expectations:
        if "contains" in expectation and expectation["contains"] not in answer:
            failures.append(f"contains {json.dumps(expectation['contains'], ensure_ascii=False)}")
        elif "regex" in expectation and not pattern_found(expectation["regex"], answer):
            failures.append(f"regex {expectation['regex']}")
        elif "json_schema" in expectation:
            miss = json_schema_miss(expectation["json_schema"], answer)
            if miss is not None:
                failures.append("json_schema: the answer is not JSON" if miss == NOT_JSON else f"json_schema: {miss}")
        elif "similar_to" in expectation:
            threshold = expectation.get("threshold", DEFAULT_SIMILARITY)
            score = similarity(answer, expectation["similar_to"])
            if score < threshold:
                failures.append(f"similar_to: {score:.2f} below {threshold}")
    return failures
