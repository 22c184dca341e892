from __future__ import annotations

import hashlib
import json
from typing import Any, NoReturn

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from simple_history.models import HistoricalRecords

from core.environments import Environment
from core.errors import IllegalTransition, ImmutableVersion
from core.governance import history_user
from prompts.choices import CacheTTL, DataCategory, VersionStatus
from prompts.spec_fields import SpecJSONField
from prompts.specs import OutputChecksSpec, RedactionSpec, RoutingSpec

# The fields that decide what a version sends to Anthropic and how its answer is checked: hashed, and
# frozen once the version is submitted.
CONTENT_FIELDS = (
    "system_prompt",
    "user_template",
    "variables",
    "model",
    "max_tokens",
    "stop_sequences",
    "cache_ttl",
    "routing",
    "output_checks",
    "redaction",
)
# Frozen as well, but not part of the hash: what the version is and who wrote it.
LOCKED_FIELDS = (*CONTENT_FIELDS, "change_summary", "prompt_id", "number", "author_id")

ALLOWED_TRANSITIONS: dict[str, set[str]] = {
    VersionStatus.DRAFT: {VersionStatus.IN_REVIEW},
    VersionStatus.IN_REVIEW: {VersionStatus.APPROVED, VersionStatus.REJECTED},
    VersionStatus.APPROVED: {VersionStatus.RETIRED},
    VersionStatus.REJECTED: set(),
    VersionStatus.RETIRED: set(),
}


def content_hash(values: dict[str, Any]) -> str:
    """SHA-256 over a canonical JSON encoding of the content fields."""
    canonical = json.dumps(
        {field: values[field] for field in CONTENT_FIELDS}, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


class Prompt(models.Model):
    """A governed prompt: what it is for, who owns it, and which kinds of data it handles."""

    slug = models.SlugField(max_length=80, unique=True)
    name = models.CharField(max_length=200)
    purpose = models.TextField(help_text="What the prompt is for and who relies on its output.")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="owned_prompts")
    team = models.CharField("team / feature", max_length=100, blank=True)
    data_categories = models.JSONField(
        default=list, blank=True, help_text="Kinds of data this prompt handles (the sensitive-data inventory)."
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    history = HistoricalRecords(get_user=history_user)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug

    def data_category_labels(self) -> list[str]:
        labels = dict(DataCategory.choices)
        return [str(labels.get(value, value)) for value in self.data_categories]


class PromptVersionQuerySet(models.QuerySet["PromptVersion"]):
    """Bulk paths cannot change frozen content or remove submitted versions."""

    def update(self, **kwargs: Any) -> int:
        frozen = {name.removesuffix("_id") for name in LOCKED_FIELDS} & {name.removesuffix("_id") for name in kwargs}
        if frozen:
            raise ImmutableVersion(f"Version content ({', '.join(sorted(frozen))}) cannot be changed in bulk.")
        if "status" in kwargs:
            raise IllegalTransition("Version status changes only through the prompt services.")
        return super().update(**kwargs)

    def delete(self) -> tuple[int, dict[str, int]]:
        if self.exclude(status=VersionStatus.DRAFT).exists():
            raise ImmutableVersion("Submitted versions are part of the change record and cannot be deleted.")
        return super().delete()


class PromptVersion(models.Model):
    """One version of a prompt. Editable while a draft; frozen, hashed and reviewed once submitted."""

    prompt = models.ForeignKey(Prompt, on_delete=models.PROTECT, related_name="versions")
    number = models.PositiveIntegerField(editable=False)

    system_prompt = models.TextField(
        help_text="The static system prompt (the cacheable prefix). It takes no variables."
    )
    user_template = models.TextField(help_text="The user message, with {{ name }} placeholders for variables.")
    variables = models.JSONField(
        default=list,
        blank=True,
        help_text='A list of {"name", "type" (string, integer, number, boolean, enum), "required", '
        '"max_length", "sensitive", "choices"}.',
    )
    model = models.CharField(max_length=100, help_text="The default model, e.g. claude-sonnet-4-6.")
    max_tokens = models.PositiveIntegerField(default=1024)
    stop_sequences = models.JSONField(default=list, blank=True)
    cache_ttl = models.CharField(
        "prompt-cache TTL", max_length=3, choices=CacheTTL.choices, default=CacheTTL.FIVE_MINUTES
    )
    routing = SpecJSONField(default=dict, blank=True, spec=RoutingSpec)
    output_checks = SpecJSONField(default=dict, blank=True, spec=OutputChecksSpec)
    redaction = SpecJSONField("extra redaction", default=dict, blank=True, spec=RedactionSpec)
    change_summary = models.TextField(help_text="What changed and why.")
    content_hash = models.CharField(
        max_length=64, editable=False, validators=[RegexValidator(r"^[0-9a-f]{64}$")], blank=True
    )
    based_on = models.ForeignKey("self", on_delete=models.PROTECT, null=True, blank=True, related_name="+")

    status = models.CharField(max_length=10, choices=VersionStatus.choices, default=VersionStatus.DRAFT)
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    submitted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    submitted_at = models.DateTimeField(null=True, blank=True)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    review_note = models.TextField(blank=True)
    retired_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    retired_at = models.DateTimeField(null=True, blank=True)
    retire_reason = models.TextField(blank=True)

    history = HistoricalRecords(get_user=history_user)
    objects = PromptVersionQuerySet.as_manager()

    class Meta:
        ordering = ["prompt__slug", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["prompt", "number"], name="prompt_version_number_unique"),
            # Four-eyes, held by the database itself: nobody reviews their own version.
            models.CheckConstraint(
                condition=Q(reviewed_by__isnull=True) | ~Q(reviewed_by=F("author")),
                name="prompt_version_reviewer_is_not_author",
            ),
            models.CheckConstraint(
                condition=~Q(status__in=["approved", "rejected", "retired"]) | Q(reviewed_by__isnull=False),
                name="prompt_version_reviewed_before_decided",
            ),
        ]
        permissions = [
            ("submit_promptversion", "Can submit a prompt version for review"),
            ("review_promptversion", "Can approve or reject a prompt version"),
            ("release_promptversion", "Can release a prompt version to an environment"),
            ("retire_promptversion", "Can retire a prompt version"),
            ("try_promptversion", "Can try a draft prompt version in the playground"),
        ]

    def __str__(self) -> str:
        return f"{self.prompt.slug} v{self.number}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            self._guard_change()
        if self.status == VersionStatus.DRAFT:
            self.content_hash = self.compute_hash()
        super().save(*args, **kwargs)

    def _guard_change(self) -> None:
        stored = PromptVersion.objects.filter(pk=self.pk).values("status", *LOCKED_FIELDS).first()
        if stored is None:
            return
        if stored["status"] != VersionStatus.DRAFT:
            changed = [name for name in LOCKED_FIELDS if getattr(self, name) != stored[name]]
            if changed:
                raise ImmutableVersion(
                    f"{self} was submitted; its content cannot change ({', '.join(changed)}). "
                    "Start a new draft from it instead."
                )
        if self.status != stored["status"] and self.status not in ALLOWED_TRANSITIONS[stored["status"]]:
            raise IllegalTransition(f"{self} cannot go from {stored['status']} to {self.status}.")

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        if self.status != VersionStatus.DRAFT:
            self._refuse_delete()
        return super().delete(*args, **kwargs)

    def _refuse_delete(self) -> NoReturn:
        raise ImmutableVersion(f"{self} was submitted; it is part of the change record and cannot be deleted.")

    def content(self) -> dict[str, Any]:
        return {field: getattr(self, field) for field in CONTENT_FIELDS}

    def compute_hash(self) -> str:
        return content_hash(self.content())


class Release(models.Model):
    """Which approved version is live in one environment. Its history is the deployment record."""

    prompt = models.ForeignKey(Prompt, on_delete=models.PROTECT, related_name="releases")
    environment = models.CharField(max_length=12, choices=Environment.choices)
    version = models.ForeignKey(PromptVersion, on_delete=models.PROTECT, related_name="releases")
    previous_version = models.ForeignKey(
        PromptVersion, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    released_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    released_at = models.DateTimeField(default=timezone.now)
    reason = models.TextField()
    is_rollback = models.BooleanField(default=False)

    history = HistoricalRecords(get_user=history_user)

    class Meta:
        ordering = ["prompt__slug", "environment"]
        constraints = [
            models.UniqueConstraint(fields=["prompt", "environment"], name="release_one_per_environment"),
        ]

    def __str__(self) -> str:
        return f"{self.prompt.slug} v{self.version.number} in {self.environment}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        # Guarded here too, so that no caller can put an unapproved version live.
        if self.version.status != VersionStatus.APPROVED:
            raise IllegalTransition(f"Only approved versions can be released; {self.version} is {self.version.status}.")
        if self.version.prompt_id != self.prompt_id:
            raise IllegalTransition(f"{self.version} does not belong to {self.prompt}.")
        super().save(*args, **kwargs)
