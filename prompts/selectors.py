"""Reads of the prompt registry: what is live where, and readable diffs between versions."""

from __future__ import annotations

import difflib
import json
import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db.models import QuerySet

from core.environments import Environment
from core.errors import ModelNotPriced
from prompts.choices import CacheTTL
from prompts.models import PromptVersion, Release
from prompts.rendering import PLACEHOLDER
from usage.pricing import TokenUsage, cost
from usage.selectors import price_for

TEXT_FIELDS = ("system_prompt", "user_template")
JSON_FIELDS = ("variables", "stop_sequences", "routing", "output_checks")
SETTING_FIELDS = ("model", "max_tokens", "cache_ttl")


@dataclass(frozen=True)
class FieldDiff:
    """How one field differs between two versions: `lines` is a unified diff as (kind, text), kind in
    " ", "+", "-", "@"; `before`/`after` are set for one-line settings instead."""

    field: str
    lines: list[tuple[str, str]]
    before: Any = None
    after: Any = None

    @property
    def label(self) -> str:
        return PromptVersion._meta.get_field(self.field).verbose_name.capitalize()  # type: ignore[union-attr]


def _as_lines(field: str, value: Any) -> list[str]:
    if field in JSON_FIELDS:
        return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False).splitlines()
    return str(value).splitlines()


def version_diff(old: PromptVersion | None, new: PromptVersion) -> list[FieldDiff]:
    """The fields in which `new` differs from `old` (every field, against nothing, when `old` is None)."""
    diffs: list[FieldDiff] = []
    for field in (*TEXT_FIELDS, *JSON_FIELDS):
        before = _as_lines(field, getattr(old, field)) if old is not None else []
        after = _as_lines(field, getattr(new, field))
        if before == after:
            continue
        lines: list[tuple[str, str]] = []
        for line in difflib.unified_diff(before, after, lineterm="", n=3):
            if line.startswith(("---", "+++")):
                continue
            lines.append(("@", line) if line.startswith("@@") else (line[0], line[1:]))
        diffs.append(FieldDiff(field=field, lines=lines))
    for field in SETTING_FIELDS:
        before_value = getattr(old, field) if old is not None else None
        after_value = getattr(new, field)
        if before_value != after_value:
            diffs.append(FieldDiff(field=field, lines=[], before=before_value, after=after_value))
    return diffs


def live_versions(prompt_id: int) -> dict[str, PromptVersion]:
    """Environment → the version live there."""
    releases = Release.objects.filter(prompt_id=prompt_id).select_related("version")
    return {release.environment: release.version for release in releases}


def live_reference(version: PromptVersion) -> tuple[str, PromptVersion] | None:
    """The live version to compare a new one with: production's, else staging's, else development's."""
    live = live_versions(version.prompt_id)
    for environment in (Environment.PRODUCTION, Environment.STAGING, Environment.DEVELOPMENT):
        if environment in live:
            return environment, live[environment]
    return None


def previous_version(version: PromptVersion) -> PromptVersion | None:
    return (
        PromptVersion.objects.filter(prompt_id=version.prompt_id, number__lt=version.number).order_by("-number").first()
    )


def releases_in(environment: str) -> QuerySet[Release]:
    """The live releases of one environment, with their versions and prompts."""
    return Release.objects.filter(environment=environment).select_related("prompt", "version").order_by("prompt__slug")


def tokens_estimate(text: str) -> int:
    """Tokens of `text` estimated from its length (≈ 4 characters a token), where none were counted."""
    return math.ceil(len(text) / 4)


@dataclass(frozen=True)
class VersionCostEstimate:
    """What 1,000 requests of a version cost at most, from character counts (≈ 4 characters a token)."""

    system_tokens: int
    template_tokens: int
    per_1000_usd: Decimal
    per_1000_cached_usd: Decimal | None


def version_cost_estimate(version: PromptVersion) -> VersionCostEstimate | None:
    """Worst case per 1,000 requests on the default model: the system prompt and template (variables
    not counted) in, `max_tokens` out; and with the system prompt read from the cache when caching is on."""
    try:
        price = price_for(version.model)
    except ModelNotPriced:
        return None
    system_tokens = tokens_estimate(version.system_prompt)
    template_tokens = tokens_estimate(PLACEHOLDER.sub("", version.user_template))
    plain = TokenUsage(input_tokens=system_tokens + template_tokens, output_tokens=version.max_tokens)
    cacheable = version.cache_ttl != CacheTTL.OFF and system_tokens >= price.min_cache_tokens
    cached = TokenUsage(input_tokens=template_tokens, cache_read_tokens=system_tokens, output_tokens=version.max_tokens)
    return VersionCostEstimate(
        system_tokens=system_tokens,
        template_tokens=template_tokens,
        per_1000_usd=cost(price, plain) * 1000,
        per_1000_cached_usd=cost(price, cached) * 1000 if cacheable else None,
    )
