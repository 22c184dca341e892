"""Reads of the prompt registry: what is live where, what waits for review or release, and readable diffs
between versions."""

from __future__ import annotations

import difflib
import json
import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db.models import OuterRef, QuerySet, Subquery

from core.environments import Environment
from core.errors import ModelNotPriced
from prompts.choices import CacheTTL, VersionStatus
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


def versions_in_review() -> QuerySet[PromptVersion]:
    """Versions waiting for a reviewer, the longest waiting first, with their prompts and authors."""
    return (
        PromptVersion.objects.filter(status=VersionStatus.IN_REVIEW)
        .select_related("prompt", "author")
        .order_by("submitted_at", "pk")
    )


@dataclass(frozen=True)
class WaitingRelease:
    """The newest approved version of a prompt, and the environments where an older version of the prompt
    is live (none: the prompt is live nowhere yet, and the version waits for its first release)."""

    version: PromptVersion
    environments: list[str]


def releases_waiting() -> list[WaitingRelease]:
    """Approved versions not yet live where they would go: per prompt, its newest approved version waits for
    release in every environment where the prompt is live with an older version, or for a first release
    when the prompt is live nowhere. A version older than the live one (after a rollback, say) is not
    waiting. Two queries, oldest approval first."""
    newest_approved = (
        PromptVersion.objects.filter(prompt_id=OuterRef("prompt_id"), status=VersionStatus.APPROVED)
        .order_by("-number")
        .values("number")[:1]
    )
    candidates = list(
        PromptVersion.objects.filter(status=VersionStatus.APPROVED, number=Subquery(newest_approved))
        .select_related("prompt")
        .order_by("reviewed_at", "pk")
    )
    live: dict[int, dict[str, int]] = {}
    for prompt_id, environment, number in Release.objects.filter(
        prompt_id__in=[version.prompt_id for version in candidates]
    ).values_list("prompt_id", "environment", "version__number"):
        live.setdefault(prompt_id, {})[environment] = number
    waiting = []
    for version in candidates:
        released = live.get(version.prompt_id, {})
        behind = [env.value for env in Environment if env in released and released[env] < version.number]
        if behind or not released:
            waiting.append(WaitingRelease(version=version, environments=behind))
    return waiting


def releases_in(environment: str) -> QuerySet[Release]:
    """The live releases of one environment, with their versions and prompts."""
    return Release.objects.filter(environment=environment).select_related("prompt", "version").order_by("prompt__slug")


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
    system_tokens = math.ceil(len(version.system_prompt) / 4)
    template_tokens = math.ceil(len(PLACEHOLDER.sub("", version.user_template)) / 4)
    plain = TokenUsage(input_tokens=system_tokens + template_tokens, output_tokens=version.max_tokens)
    cacheable = version.cache_ttl != CacheTTL.OFF and system_tokens >= price.min_cache_tokens
    cached = TokenUsage(input_tokens=template_tokens, cache_read_tokens=system_tokens, output_tokens=version.max_tokens)
    return VersionCostEstimate(
        system_tokens=system_tokens,
        template_tokens=template_tokens,
        per_1000_usd=cost(price, plain) * 1000,
        per_1000_cached_usd=cost(price, cached) * 1000 if cacheable else None,
    )
