"""Redaction before anything leaves, and rehydration of the answer with this request's values only.

Sensitive variables are replaced whole. Other text is searched first with the version's own terms and
patterns (on the text as written), then with every registered detector (`gateway.redaction.detectors`,
on the folded copy of the text); which span wins where they overlap is the registry's rule. Each
distinct value gets one placeholder (`<EMAIL_1>`) for the whole request.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from gateway.redaction.detectors import detectors, fold
from prompts.specs import RedactionSpec

PLACEHOLDER = re.compile(r"<([A-Z][A-Z0-9_]*_\d+)>")


def _candidates(text: str, extra: list[tuple[str, re.Pattern[str]]]) -> Iterator[tuple[int, int, str]]:
    """(start, end, kind) of everything to replace, in the order that decides ties: the version's own
    patterns first, reading the text as written, then the registered detectors in the registry's
    order, reading it folded."""
    for kind, pattern in extra:
        for match in pattern.finditer(text):
            yield (*match.span(), kind)
    folded = fold(text)
    for detector in detectors():
        yield from detector.find(folded)


@dataclass
class Redaction:
    """One request's placeholders: value ↔ placeholder, and counts per kind. Lives only for the request."""

    by_value: dict[tuple[str, str], str] = field(default_factory=dict)
    by_placeholder: dict[str, str] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)
    _next: Counter[str] = field(default_factory=Counter)

    def placeholder(self, kind: str, value: str) -> str:
        key = (kind, value)
        if key not in self.by_value:
            self._next[kind] += 1
            token = f"<{kind}_{self._next[kind]}>"
            self.by_value[key] = token
            self.by_placeholder[token] = value
        self.counts[kind] += 1
        return self.by_value[key]

    def redact_text(self, text: str, extra: list[tuple[str, re.Pattern[str]]] | None = None) -> str:
        # Earliest first; on a tie, the order _candidates yields (the registry's rule) wins.
        candidates = sorted(enumerate(_candidates(text, extra or [])), key=lambda item: (item[1][0], item[0]))
        if not candidates:
            return text
        out, position = [], 0
        for _, (start, end, kind) in candidates:
            if start < position:
                continue  # inside something already replaced
            out.append(text[position:start])
            out.append(self.placeholder(kind, text[start:end]))
            position = end
        out.append(text[position:])
        return "".join(out)

    def rehydrate(self, text: str) -> str:
        """Put this request's values back. Placeholders this request did not make stay as typed."""
        if not self.by_placeholder:
            return text
        return PLACEHOLDER.sub(lambda m: self.by_placeholder.get(m.group(0), m.group(0)), text)

    def conceal(self, text: str) -> str:
        """The text with this request's values replaced by their placeholders again (for storing an
        answer that was rehydrated)."""
        for (_, value), token in sorted(self.by_value.items(), key=lambda item: -len(item[0][1])):
            text = text.replace(value, token)
        return text

    def as_counts(self) -> dict[str, int]:
        return dict(sorted(self.counts.items()))

    def to_json(self) -> str:
        """What queued work needs later (to be stored sealed only): placeholders and counts."""
        return json.dumps({"placeholders": self.by_placeholder, "counts": self.counts})

    @classmethod
    def from_json(cls, text: str) -> Redaction:
        data = json.loads(text)
        return cls(by_placeholder=dict(data["placeholders"]), counts=Counter(data["counts"]))


def custom_patterns(rules: RedactionSpec) -> list[tuple[str, re.Pattern[str]]]:
    """A version's own redaction rules: its terms (case-insensitive) and patterns."""
    patterns: list[tuple[str, re.Pattern[str]]] = []
    terms = [term for term in rules.terms if term]
    if terms:
        patterns.append(("TERM", re.compile("|".join(re.escape(term) for term in terms), re.IGNORECASE)))
    for pattern in rules.patterns:
        patterns.append(("CUSTOM", re.compile(pattern)))
    return patterns


def redact_variables(
    schema: list[dict[str, Any]], values: dict[str, Any], extra: list[tuple[str, re.Pattern[str]]]
) -> tuple[dict[str, Any], Redaction]:
    """Variables with sensitive ones replaced whole and personal data in the others replaced."""
    redaction = Redaction()
    sensitive = {variable["name"] for variable in schema if variable.get("sensitive")}
    redacted: dict[str, Any] = {}
    # A sensitive value is replaced wherever it appears in the request, not only in its own variable
    # (a ticket signed with the customer's name): its occurrences in the other variables are found too.
    repeated = list(extra)
    for name in sorted(sensitive & set(values), key=list(values).index):
        if values[name] is None:
            continue
        text = str(values[name])
        redacted[name] = redaction.placeholder(name.upper(), text)
        if len(text.strip()) >= 3:
            repeated.insert(0, (name.upper(), re.compile(re.escape(text.strip()), re.IGNORECASE)))
    for name, value in values.items():
        if name in redacted:
            continue
        if isinstance(value, str):
            redacted[name] = redaction.redact_text(value, repeated)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            # A number is rendered as text: a card or phone number sent as a JSON number is found too
            # (a float with nothing after the point as the integer it is).
            text = str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
            scanned = redaction.redact_text(text, repeated)
            redacted[name] = value if scanned == text else scanned
        else:
            redacted[name] = value
    return redacted, redaction


class StreamRehydrator:
    """Rehydrates streamed text, holding back a placeholder until it is complete."""

    MAX_PLACEHOLDER = 80

    def __init__(self, redaction: Redaction) -> None:
        self.redaction = redaction
        self.pending = ""

    def feed(self, chunk: str) -> str:
        text = self.pending + chunk
        cut = text.rfind("<")
        # Hold back from the last "<" when it may still become a placeholder.
        if cut != -1 and ">" not in text[cut:] and len(text) - cut <= self.MAX_PLACEHOLDER:
            held = text[cut:]
            if re.fullmatch(r"<[A-Z0-9_]*", held):
                self.pending = held
                return self.redaction.rehydrate(text[:cut])
        self.pending = ""
        return self.redaction.rehydrate(text)

    def flush(self) -> str:
        text, self.pending = self.pending, ""
        return self.redaction.rehydrate(text)
