"""Refuses prompt text that looks like it carries a credential: prompts are read by many people and
sent to Anthropic on every call, so a key pasted into one is a key leaked."""

from __future__ import annotations

import re

_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("an Anthropic API key", re.compile(r"sk-ant-[A-Za-z0-9_-]{16,}")),
    ("a Tollgate API token", re.compile(r"\btg_(?:dev|stg|prd)_[A-Za-z0-9_-]{16,}")),
    ("an AWS access key id", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("a private key block", re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----")),
    ("an OpenAI API key", re.compile(r"\bsk-(?:proj-)?[A-Za-z0-9_-]{32,}")),
    ("a GitHub token", re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b")),
]


def find_secrets(text: str) -> list[str]:
    """What kinds of secret `text` seems to contain, with the line of each (never the secret itself)."""
    findings: list[str] = []
    for label, pattern in _PATTERNS:
        for match in pattern.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            findings.append(f"looks like it contains {label} (line {line})")
    return findings
