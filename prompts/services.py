"""The prompt registry's writes: every change of a prompt, version or release goes through here.

Each service checks the actor's role, owns its transaction, leaves a history row (acting user and
reason) and writes an audit event in the same transaction. The model layer guards the same rules, so
a caller that skips the services (the shell, a bulk update) is refused too.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import models, transaction
from django.utils import timezone

from audit.services import audit_event_record
from core.environments import Environment
from core.errors import (
    EvaluationRequired,
    FourEyesViolation,
    IllegalTransition,
    InvalidVersion,
    PromptNotFound,
    RoleRequired,
    VersionTampered,
)
from core.governance import governed_update, require_permission, require_reason, save_with_history
from core.hotcache import HotCache
from prompts import hooks
from prompts.choices import DataCategory, VersionStatus
from prompts.models import CONTENT_FIELDS, Prompt, PromptVersion, Release
from prompts.specs import routing_of
from prompts.validation import version_content_errors
from usage.selectors import price_for

logger = logging.getLogger(__name__)

PROMPT_FIELDS = ("name", "purpose", "owner", "team", "data_categories")


def _data_categories(values: list[str]) -> list[str]:
    unknown = sorted(set(values) - set(DataCategory.values))
    if unknown:
        raise InvalidVersion({"data_categories": [f"unknown categories: {', '.join(unknown)}"]})
    return sorted(set(values), key=DataCategory.values.index)


# --- prompts ------------------------------------------------------------------------------------------


@transaction.atomic
def prompt_create(
    *,
    actor: User,
    slug: str,
    name: str,
    purpose: str,
    owner: User,
    team: str = "",
    data_categories: list[str] | None = None,
) -> Prompt:
    require_permission(actor, "prompts.add_prompt", "create prompts")
    prompt = Prompt(
        slug=slug,
        name=name,
        purpose=purpose,
        owner=owner,
        team=team,
        data_categories=_data_categories(data_categories or []),
    )
    prompt.full_clean()
    save_with_history(prompt, actor=actor, reason="Prompt created")
    audit_event_record(
        action="prompt.create",
        actor=actor,
        target=prompt,
        changes={"slug": slug, "name": name, "owner": owner.get_username(), "data_categories": prompt.data_categories},
    )
    return prompt


@transaction.atomic
def prompt_update(*, actor: User, prompt: Prompt, reason: str, **changes: Any) -> Prompt:
    require_permission(actor, "prompts.change_prompt", "change prompts")
    reason = require_reason(reason, "change a prompt")
    if "data_categories" in changes:
        changes["data_categories"] = _data_categories(changes["data_categories"])
    prompt, changed = governed_update(
        prompt,
        actor=actor,
        reason=reason,
        changes=changes,
        fields=PROMPT_FIELDS,
        refuse=lambda names: InvalidVersion({name: ["cannot be changed here"] for name in names}),
    )
    audit_event_record(action="prompt.update", actor=actor, target=prompt, changes=changed, reason=reason)
    return prompt


# --- versions -----------------------------------------------------------------------------------------


def _check_content(content: dict[str, Any], change_summary: str) -> None:
    errors = version_content_errors(content, change_summary)
    if errors:
        raise InvalidVersion(errors)


@transaction.atomic
def prompt_version_create(
    *,
    actor: User,
    prompt: Prompt,
    content: dict[str, Any],
    change_summary: str,
    based_on: PromptVersion | None = None,
) -> PromptVersion:
    """A new draft. `content` holds every field of CONTENT_FIELDS."""
    require_permission(actor, "prompts.add_promptversion", "write prompt versions")
    missing = set(CONTENT_FIELDS) - set(content)
    if missing:
        raise InvalidVersion({field: ["is required"] for field in sorted(missing)})
    _check_content(content, change_summary)
    # Lock the prompt so two drafts started at once get different numbers.
    Prompt.objects.select_for_update().get(pk=prompt.pk)
    number = (prompt.versions.aggregate(models.Max("number"))["number__max"] or 0) + 1
    version = PromptVersion(
        prompt=prompt,
        number=number,
        author=actor,
        change_summary=change_summary,
        based_on=based_on,
        **{field: content[field] for field in CONTENT_FIELDS},
    )
    save_with_history(
        version, actor=actor, reason=f"New draft from v{based_on.number}" if based_on else "Draft created"
    )
    audit_event_record(
        action="prompt_version.create",
        actor=actor,
        target=version,
        changes={
            "number": number,
            "based_on": based_on.number if based_on else None,
            "content_hash": version.content_hash,
        },
    )
    return version


@transaction.atomic
def prompt_version_update(
    *, actor: User, version: PromptVersion, content: dict[str, Any], change_summary: str
) -> PromptVersion:
    """Edit a draft. Only its author may: whoever shapes the content must not be able to review it."""
    require_permission(actor, "prompts.change_promptversion", "edit prompt versions")
    version = PromptVersion.objects.select_for_update().get(pk=version.pk)
    if version.status != VersionStatus.DRAFT:
        raise IllegalTransition(f"{version} is {version.get_status_display().lower()}; start a new draft from it.")
    if version.author_id != actor.pk:
        raise RoleRequired(f"Only the author of {version} may edit it; start a new draft from it instead.")
    merged = {**version.content(), **{k: v for k, v in content.items() if k in CONTENT_FIELDS}}
    _check_content(merged, change_summary)
    before = version.content_hash
    for field, value in merged.items():
        setattr(version, field, value)
    version.change_summary = change_summary
    save_with_history(version, actor=actor, reason="Draft edited")
    audit_event_record(
        action="prompt_version.update",
        actor=actor,
        target=version,
        changes={"content_hash": [before, version.content_hash]},
    )
    return version


@transaction.atomic
def prompt_version_new_draft(*, actor: User, source: PromptVersion) -> PromptVersion:
    """A new draft carrying `source`'s content: the way to change anything after submission."""
    return prompt_version_create(
        actor=actor,
        prompt=source.prompt,
        content=source.content(),
        change_summary=f"Based on v{source.number}: {source.change_summary}",
        based_on=source,
    )


def _transition(
    version: PromptVersion,
    *,
    actor: User,
    to: str,
    reason: str,
    action: str,
    recorded: dict[str, Any] | None = None,
    **fields: Any,
) -> PromptVersion:
    """Move the version to `to`, with history and an audit event (`recorded`: more for the event's data)."""
    before = version.status
    version.status = to
    for field, value in fields.items():
        setattr(version, field, value)
    save_with_history(version, actor=actor, reason=reason)
    audit_event_record(
        action=action,
        actor=actor,
        target=version,
        changes={"status": [before, to], "content_hash": version.content_hash, **(recorded or {})},
        reason=reason,
    )
    return version


def _locked(version: PromptVersion, *expected: str) -> PromptVersion:
    version = PromptVersion.objects.select_for_update().select_related("prompt").get(pk=version.pk)
    if version.status not in expected:
        wanted = " or ".join(VersionStatus(status).label.lower() for status in expected)
        raise IllegalTransition(f"{version} is {version.get_status_display().lower()}, not {wanted}.")
    return version


@transaction.atomic
def prompt_version_submit(*, actor: User, version: PromptVersion, reason: str = "") -> PromptVersion:
    require_permission(actor, "prompts.submit_promptversion", "submit prompt versions")
    version = _locked(version, VersionStatus.DRAFT)
    _check_content(version.content(), version.change_summary)
    classifier = routing_of(version).classifier
    if (
        classifier is not None
        and not PromptVersion.objects.filter(prompt__slug=classifier.prompt, status=VersionStatus.APPROVED).exists()
    ):
        raise InvalidVersion({"routing": [f"classifier prompt '{classifier.prompt}' has no approved version"]})
    return _transition(
        version,
        actor=actor,
        to=VersionStatus.IN_REVIEW,
        reason=reason.strip() or "Submitted for review",
        action="prompt_version.submit",
        submitted_by=actor,
        submitted_at=timezone.now(),
    )


def _review(
    version: PromptVersion, *, actor: User, note: str, to: str, recorded: dict[str, Any] | None = None
) -> PromptVersion:
    doing = "approve" if to == VersionStatus.APPROVED else "reject"
    require_permission(actor, "prompts.review_promptversion", f"{doing} prompt versions")
    note = require_reason(note, f"{doing} a version")
    prompt_version_verify(version=version)
    with transaction.atomic():
        version = _locked(version, VersionStatus.IN_REVIEW)
        if version.author_id == actor.pk:
            raise FourEyesViolation(
                f"{actor.get_username()} wrote {version} and cannot {doing} it: a second person must."
            )
        return _transition(
            version,
            actor=actor,
            to=to,
            reason=note,
            action=f"prompt_version.{doing}",
            reviewed_by=actor,
            reviewed_at=timezone.now(),
            review_note=note,
            recorded=recorded,
        )


def version_models(version: PromptVersion) -> list[str]:
    """Every model a version may call: its default and those its routing rules and classifier pick."""
    return sorted({version.model, *routing_of(version).models()})


def prompt_version_approve(*, actor: User, version: PromptVersion, note: str) -> PromptVersion:
    """Approve after review. Every model the version may call must have a price in force; with
    TOLLGATE_APPROVAL_REQUIRES_EVALUATION, the latest evaluation of its content must have passed.

    The event records the cost of the change (prompts.hooks: the system prompt's tokens against the live
    version's and the monthly difference), counted now if its review page never was opened; a count that
    fails is recorded as such and does not hold the approval up."""
    for model in version_models(version):
        price_for(model)  # raises ModelNotPriced, which names the model
    if settings.TOLLGATE_APPROVAL_REQUIRES_EVALUATION and (refusal := hooks.evaluations().approval_refusal(version)):
        raise EvaluationRequired(f"{version} needs a passing evaluation before approval: {refusal}.")
    # The refusals that need no upstream call come first, so a refused approval counts nothing.
    require_permission(actor, "prompts.review_promptversion", "approve prompt versions")
    require_reason(note, "approve a version")
    countable = version.status == VersionStatus.IN_REVIEW and version.author_id != actor.pk
    figure = hooks.costs().of_change(version, count=countable).record()
    return _review(version, actor=actor, note=note, to=VersionStatus.APPROVED, recorded={"cost_of_change": figure})


def prompt_version_reject(*, actor: User, version: PromptVersion, note: str) -> PromptVersion:
    return _review(version, actor=actor, note=note, to=VersionStatus.REJECTED)


@transaction.atomic
def prompt_version_retire(*, actor: User, version: PromptVersion, reason: str) -> PromptVersion:
    require_permission(actor, "prompts.retire_promptversion", "retire prompt versions")
    reason = require_reason(reason, "retire a version")
    version = _locked(version, VersionStatus.APPROVED)
    live = sorted(version.releases.values_list("environment", flat=True))
    if live:
        raise IllegalTransition(f"{version} is live in {', '.join(live)}; release another version there first.")
    return _transition(
        version,
        actor=actor,
        to=VersionStatus.RETIRED,
        reason=reason,
        action="prompt_version.retire",
        retired_by=actor,
        retired_at=timezone.now(),
        retire_reason=reason,
    )


# --- releases -----------------------------------------------------------------------------------------


def prompt_version_release(*, actor: User, version: PromptVersion, environment: str, reason: str) -> Release:
    """Make `version` the live one in `environment`. Releasing an older version is a rollback."""
    require_permission(actor, "prompts.release_promptversion", "release prompt versions")
    reason = require_reason(reason, "release a version")
    if environment not in Environment.values:
        raise InvalidVersion({"environment": [f"must be one of {', '.join(Environment.values)}"]})
    prompt_version_verify(version=version)
    with transaction.atomic():
        version = _locked(version, VersionStatus.APPROVED)
        if (
            environment == Environment.PRODUCTION
            and settings.TOLLGATE_REQUIRE_STAGING_BEFORE_PRODUCTION
            and not Release.history.filter(version_id=version.pk, environment=Environment.STAGING).exists()
        ):
            raise IllegalTransition(f"{version} has not been released to staging; production needs that first.")
        release = (
            Release.objects.select_for_update().filter(prompt_id=version.prompt_id, environment=environment).first()
        )
        previous = release.version if release else None
        if previous is not None and previous.pk == version.pk:
            raise IllegalTransition(f"{version} is already live in {environment}.")
        if release is None:
            release = Release(prompt_id=version.prompt_id, environment=environment)
        release.version = version
        release.previous_version = previous
        release.released_by = actor
        release.released_at = timezone.now()
        release.reason = reason
        release.is_rollback = previous is not None and version.number < previous.number
        save_with_history(release, actor=actor, reason=reason)
        audit_event_record(
            action="release.rollback" if release.is_rollback else "release.create",
            actor=actor,
            target=release,
            changes={
                "prompt": version.prompt.slug,
                "environment": environment,
                "version": [previous.number if previous else None, version.number],
                "content_hash": version.content_hash,
            },
            reason=reason,
        )
        return release


def release_rollback(*, actor: User, release: Release, reason: str) -> Release:
    """Put back the version that was live before the current one."""
    if release.previous_version is None:
        raise IllegalTransition(f"Nothing was live in {release.environment} before {release.version}.")
    return prompt_version_release(
        actor=actor, version=release.previous_version, environment=release.environment, reason=reason
    )


# --- integrity ----------------------------------------------------------------------------------------


def prompt_version_verify(*, version: PromptVersion, fresh: bool = False) -> PromptVersion:
    """Check the stored content against its hash. A mismatch means someone edited the database directly:
    it is recorded (in a transaction of its own, so it survives the refusal) and refused. `fresh`: the
    instance was just read from the database, so it need not be read again."""
    stored = version if fresh else PromptVersion.objects.select_related("prompt").get(pk=version.pk)
    actual = stored.compute_hash()
    if actual == stored.content_hash:
        return stored
    logger.critical("Prompt version %s failed its integrity check", stored)
    with transaction.atomic():
        audit_event_record(
            action="prompt_version.tamper_detected",
            actor_repr="system",
            target=stored,
            changes={"stored_hash": stored.content_hash, "actual_hash": actual},
        )
    raise VersionTampered(f"{stored} does not match its recorded content hash; it will not run until investigated.")


_released: HotCache[tuple[str, str], PromptVersion] = HotCache()


def _released_read(slug: str, environment: str) -> PromptVersion:
    try:  # one release per prompt and environment (a unique constraint): get() spares first()'s ORDER BY
        release = Release.objects.select_related("version", "version__prompt").get(
            prompt__slug=slug, environment=environment
        )
    except Release.DoesNotExist:
        raise PromptNotFound(f"No prompt '{slug}' is released to {environment}.") from None
    return prompt_version_verify(version=release.version, fresh=True)


def released_version_for_run(*, slug: str, environment: str) -> PromptVersion:
    """The version live in `environment`, verified against its hash when it was read: what the run pipeline
    executes. From the hot cache (docs/contract.md §12): a release, rollback or any change of the prompt or
    version is seen by the next request; a row edited behind the application's back is read (and its
    tampering refused) once the entry's TOLLGATE_HOT_CACHE_SECONDS have passed."""
    return _released.get((slug, environment), partial(_released_read, slug, environment))
