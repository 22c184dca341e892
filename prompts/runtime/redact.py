"""Redaction before anything leaves, and rehydration of the answer with this request's values only.

Sensitive variables are replaced whole. Other text is scanned with compiled patterns that find
candidates cheaply; only candidates are validated (phone numbers by `phonenumbers`, cards by Luhn,
IBANs by their checksum with `python-stdnum`), which keeps 15 KB of text within a couple of
milliseconds. Each distinct value gets one placeholder (`<EMAIL_1>`) for the whole request.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import phonenumbers
from stdnum import iban, luhn

# E-mail addresses are found from their "@" outwards: scanning every word for a local part is slow.
EMAIL_LOCAL = re.compile(r"[A-Za-z0-9._%+-]{1,64}$")
EMAIL_DOMAIN = re.compile(r"[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
# One pass finds every run of digits and separators; each run is then classified cheaply.
# The scanning patterns start with a plain character class, which lets the regex engine skip ahead
# quickly (a leading look-behind makes it try every position); word boundaries are checked in Python
# on the few matches. A run stops at a dot between digits (an IP address, a decimal), not at a full stop.
DIGIT_RUN = re.compile(r"\d[\d ()-]{5,22}\d")
IPV4_RUN = re.compile(r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}")
# Phone numbers written with dots between their groups (415.555.2671, +33.1.42.68.53.00).
DOTTED_RUN = re.compile(r"\d{1,4}(?:\.\d{1,4}){2,5}")
IBAN = re.compile(r"[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}")
SSN = re.compile(r"(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}")
IPV6 = re.compile(r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
IPV6_HINT = re.compile(r"[0-9A-Fa-f]{0,4}:[0-9A-Fa-f]{0,4}:")
PLACEHOLDER = re.compile(r"<([A-Z][A-Z0-9_]*_\d+)>")
NON_DIGIT = re.compile(r"\D")


@lru_cache(maxsize=4096)
def _valid_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


@lru_cache(maxsize=4096)
def _valid_phone(text: str) -> bool:
    try:
        number = phonenumbers.parse(text, None if text.startswith("+") else "US")
    except phonenumbers.NumberParseException:
        return False
    return bool(phonenumbers.is_valid_number(number))


@lru_cache(maxsize=4096)
def classify_digits(run: str) -> str | None:
    """What a run of digits and separators is, if it is personal data: SSN, IP, CARD or PHONE."""
    if SSN.fullmatch(run):
        return "SSN"
    digits = NON_DIGIT.sub("", run)
    if 13 <= len(digits) <= 19 and luhn.is_valid(digits):
        return "CARD"
    # Phone numbers: 10 to 15 digits, or 7 and more with an international prefix.
    if (10 <= len(digits) <= 15 or (run.startswith("+") and len(digits) >= 7)) and _valid_phone(run):
        return "PHONE"
    return None


@lru_cache(maxsize=4096)
def _valid_iban(text: str) -> bool:
    return bool(iban.is_valid(text.replace(" ", "")))


@lru_cache(maxsize=4096)
def _classify_run(run: str) -> tuple[tuple[int, int, str], ...]:
    """A run may hold two numbers side by side: when the whole is nothing, try its space-separated
    groups, longest prefix first."""
    kind = classify_digits(run)
    if kind:
        return ((0, len(run), kind),)
    groups = [match.span() for match in re.finditer(r"\S+", run)]
    for count in range(len(groups) - 1, 0, -1):
        end = groups[count - 1][1]
        kind = classify_digits(run[:end])
        if kind:
            rest = groups[count][0]
            return ((0, end, kind), *((rest + o, n, k) for o, n, k in _classify_run(run[rest:])))
    if len(groups) > 1:
        rest = groups[1][0]
        return tuple((rest + o, n, k) for o, n, k in _classify_run(run[rest:]))
    return ()


def _word_bounded(text: str, start: int, end: int, *, dots: bool = False) -> bool:
    """No letter or digit glued to either side; with `dots`, no "1." before or ".1" after either."""
    before = text[start - 1] if start else " "
    after = text[end] if end < len(text) else " "
    if before.isalnum() or before == "_" or after.isalnum() or after == "_":
        return False
    if dots:
        return not (before == "." and start > 1 and text[start - 2].isdigit()) and not (
            after == "." and end + 1 < len(text) and text[end + 1].isdigit()
        )
    return True


def _digit_runs(text: str) -> Iterator[tuple[int, str]]:
    """Runs of digits and separators, with a leading "+" or "(" taken in, standing alone as words."""
    for match in DIGIT_RUN.finditer(text):
        start, end = match.span()
        while start and text[start - 1] in "+(":
            start -= 1
        if _word_bounded(text, start, end, dots=True) and (not start or text[start - 1] != "+"):
            yield start, text[start:end]


def _dotted_phones(text: str) -> Iterator[tuple[int, int]]:
    """Spans of phone numbers written with dots: 10 to 15 digits (7 and more after a "+"), not an IP
    address, valid for `phonenumbers`."""
    for match in DOTTED_RUN.finditer(text):
        start, end = match.span()
        if start and text[start - 1] == "+":
            start -= 1
        run = text[start:end]
        digits = len(run) - run.count(".") - run.startswith("+")
        if not (10 <= digits <= 15 or (run.startswith("+") and digits >= 7)):
            continue
        if _word_bounded(text, start, end, dots=True) and not _valid_ip(run) and _valid_phone(run):
            yield start, end


def _candidates(text: str, extra: list[tuple[str, re.Pattern[str]]]) -> Iterator[tuple[int, int, str]]:
    """(start, end, kind) of everything to replace, most specific first; cheap hints skip whole scans."""
    for kind, pattern in extra:
        for match in pattern.finditer(text):
            yield (*match.span(), kind)
    at = text.find("@")
    while at != -1:
        local = EMAIL_LOCAL.search(text, max(0, at - 64), at)
        domain = EMAIL_DOMAIN.match(text, at + 1)
        if local and domain:
            yield local.start(), domain.end(), "EMAIL"
        at = text.find("@", at + 1)
    for match in IBAN.finditer(text):
        if _word_bounded(text, *match.span()) and _valid_iban(match.group(0)):
            yield (*match.span(), "IBAN")
    for start, run in _digit_runs(text):
        for offset, length, kind in _classify_run(run):
            yield start + offset, start + offset + length, kind
    for match in IPV4_RUN.finditer(text):
        if _word_bounded(text, *match.span(), dots=True) and _valid_ip(match.group(0)):
            yield (*match.span(), "IP")
    for start, end in _dotted_phones(text):
        yield start, end, "PHONE"
    if ":" in text and IPV6_HINT.search(text):
        for match in IPV6.finditer(text):
            if _valid_ip(match.group(0)):
                yield (*match.span(), "IP")


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
        # Earliest first; on a tie, the order _candidates yields (most specific kind first) wins.
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


def custom_patterns(rules: dict[str, Any]) -> list[tuple[str, re.Pattern[str]]]:
    """A version's own redaction rules: `{"terms": [...], "patterns": [...]}` (case-insensitive terms)."""
    patterns: list[tuple[str, re.Pattern[str]]] = []
    terms = [term for term in rules.get("terms", []) if term]
    if terms:
        patterns.append(("TERM", re.compile("|".join(re.escape(term) for term in terms), re.IGNORECASE)))
    for pattern in rules.get("patterns", []):
        patterns.append(("CUSTOM", re.compile(pattern)))
    return patterns


def redact_variables(
    schema: list[dict[str, Any]], values: dict[str, Any], extra: list[tuple[str, re.Pattern[str]]]
) -> tuple[dict[str, Any], Redaction]:
    """Variables with sensitive ones replaced whole and personal data in the others replaced."""
    redaction = Redaction()
    sensitive = {variable["name"] for variable in schema if variable.get("sensitive")}
    redacted: dict[str, Any] = {}
    for name, value in values.items():
        if name in sensitive and value is not None:
            redacted[name] = redaction.placeholder(name.upper(), str(value))
        elif isinstance(value, str):
            redacted[name] = redaction.redact_text(value, extra)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            # A number is rendered as text: a card or phone number sent as a JSON number is found too.
            text = str(value)
            scanned = redaction.redact_text(text, extra)
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


def iter_rehydrated(redaction: Redaction, chunks: Iterator[str]) -> Iterator[str]:
    rehydrator = StreamRehydrator(redaction)
    for chunk in chunks:
        text = rehydrator.feed(chunk)
        if text:
            yield text
    tail = rehydrator.flush()
    if tail:
        yield tail
