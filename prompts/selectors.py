"""Reads of the prompt registry: what is live where, what waits for review or release, and readable diffs
between versions."""

from __future__ import annotations

import difflib
import json
import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import OuterRef, Q, QuerySet, Subquery, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from core.environments import Environment
from core.errors import ModelNotPriced
from prompts import hooks
from prompts.choices import CacheTTL, VersionStatus
from prompts.models import Prompt, PromptVersion, Release
from prompts.rendering import PLACEHOLDER
from usage.choices import Outcome
from usage.models import UsageRollup
from usage.pricing import TokenUsage, cost
from usage.selectors import price_for

TEXT_FIELDS = ("system_prompt", "user_template")
JSON_FIELDS = ("variables", "stop_sequences", "routing", "output_checks", "redaction")
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


# --- a prompt's page ------------------------------------------------------------------------------------

USAGE_DAYS = 30


@dataclass(frozen=True)
class UsageRow:
    """Calls of a prompt summed over one day or one version (`key`); tokens in count cache reads and
    writes; errors are the calls whose outcome was not OK."""

    key: Any
    calls: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: Decimal = Decimal(0)


@dataclass(frozen=True)
class PromptUsage:
    """A prompt's calls over the last `USAGE_DAYS` days, from the hourly roll-ups (never the ledger):
    every day of the window, oldest first (days without calls are zero), per version, and in all."""

    first_day: date
    days: list[UsageRow]
    versions: list[UsageRow]
    total: UsageRow


@dataclass(frozen=True)
class LiveRelease:
    """What is live in one environment, and since when (`release` None: nothing)."""

    environment: str
    label: str
    release: Release | None


@dataclass(frozen=True)
class PromptPage:
    """All a prompt's page shows, read in a fixed number of queries however many versions it has."""

    prompt: Prompt
    versions: list[PromptVersion]  # newest first
    live: list[LiveRelease]  # one per environment, in Environment's order
    live_numbers: dict[int, list[str]]  # version pk → the environments it is live in
    evaluations: dict[int, Any]  # version pk → its latest evaluation, for the versions that have one
    usage: PromptUsage


# Named apart from the roll-up's columns, which an aggregate may not shadow.
_USAGE_SUMS = {
    "sum_calls": Sum("calls"),
    "sum_errors": Sum("calls", filter=~Q(outcome=Outcome.OK)),
    "sum_input": Sum("input_tokens"),
    "sum_cache_write": Sum("cache_write_tokens"),
    "sum_cache_read": Sum("cache_read_tokens"),
    "sum_output": Sum("output_tokens"),
    "sum_cost": Sum("cost_usd"),
}


def _usage_row(key: Any, sums: dict[str, Any]) -> UsageRow:
    return UsageRow(
        key=key,
        calls=sums["sum_calls"] or 0,
        errors=sums["sum_errors"] or 0,
        input_tokens=(sums["sum_input"] or 0) + (sums["sum_cache_write"] or 0) + (sums["sum_cache_read"] or 0),
        output_tokens=sums["sum_output"] or 0,
        cost_usd=sums["sum_cost"] or Decimal(0),
    )


def prompt_usage(*, prompt: Prompt, days: int = USAGE_DAYS) -> PromptUsage:
    """Two queries on the roll-ups of the prompt's slug: by day and by version."""
    today = timezone.now().astimezone(UTC).date()
    first_day = today - timedelta(days=days - 1)
    rows = UsageRollup.objects.filter(
        prompt_slug=prompt.slug, hour__gte=datetime.combine(first_day, time.min, tzinfo=UTC)
    ).order_by()
    by_day = {
        row["day"]: _usage_row(row["day"], row)
        for row in rows.annotate(day=TruncDate("hour", tzinfo=UTC)).values("day").annotate(**_USAGE_SUMS)
    }
    by_version = [
        _usage_row(row["prompt_version"], row)
        for row in rows.values("prompt_version").annotate(**_USAGE_SUMS).order_by("-prompt_version")
    ]
    total = UsageRow(
        key=None,
        calls=sum(row.calls for row in by_version),
        errors=sum(row.errors for row in by_version),
        input_tokens=sum(row.input_tokens for row in by_version),
        output_tokens=sum(row.output_tokens for row in by_version),
        cost_usd=sum((row.cost_usd for row in by_version), Decimal(0)),
    )
    every_day = [first_day + timedelta(days=offset) for offset in range(days)]
    return PromptUsage(
        first_day=first_day,
        days=[by_day.get(day) or UsageRow(key=day) for day in every_day],
        versions=by_version,
        total=total,
    )


def prompt_page(*, prompt: Prompt) -> PromptPage:
    """The prompt's versions (newest first, with who wrote, submitted and reviewed each), what is live in
    each environment, each version's latest evaluation and the last 30 days of usage."""
    versions = list(
        PromptVersion.objects.filter(prompt=prompt)
        .select_related("author", "submitted_by", "reviewed_by")
        .order_by("-number")
    )
    releases = {
        release.environment: release
        for release in Release.objects.filter(prompt=prompt).select_related(
            "version", "previous_version", "released_by"
        )
    }
    live_numbers: dict[int, list[str]] = {}
    for environment in Environment.values:
        if environment in releases:
            live_numbers.setdefault(releases[environment].version_id, []).append(environment)
    return PromptPage(
        prompt=prompt,
        versions=versions,
        live=[
            LiveRelease(environment=value, label=str(label), release=releases.get(value))
            for value, label in Environment.choices
        ],
        live_numbers=live_numbers,
        evaluations=hooks.evaluations().latest_of(versions),
        usage=prompt_usage(prompt=prompt),
    )
