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

from config.environments import Environment
from config.governance import history_user
from prompts.choices import (
    BatchStatus,
    CacheTTL,
    DataCategory,
    EvaluationStatus,
    EvaluationTrigger,
    ItemStatus,
    JobStatus,
    VersionStatus,
)
from prompts.errors import IllegalTransition, ImmutableVersion
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


class Run(models.Model):
    """One run of a released prompt by an API client: its result (GET /api/v1/runs/{id}) and, until
    TOLLGATE_BODY_RETENTION_DAYS have passed, its redacted request and answer for incident
    investigation. Personal data never reaches this table: bodies hold placeholders."""

    public_id = models.CharField(max_length=40, unique=True, editable=False)
    request_id = models.CharField(max_length=128, editable=False)
    api_client = models.ForeignKey("keys.ApiClient", on_delete=models.PROTECT, related_name="+", editable=False)
    environment = models.CharField(max_length=12, choices=Environment.choices, editable=False)
    prompt = models.ForeignKey(Prompt, on_delete=models.PROTECT, related_name="runs", editable=False)
    version = models.ForeignKey(PromptVersion, on_delete=models.PROTECT, related_name="runs", editable=False)
    endpoint = models.CharField(max_length=10, editable=False)
    succeeded = models.BooleanField(editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False, db_index=True)
    result = models.JSONField(default=dict, editable=False, help_text="The run result, without the output.")
    request_redacted = models.TextField(blank=True, editable=False)
    output_redacted = models.TextField(blank=True, editable=False)
    bodies_expire_at = models.DateTimeField(editable=False, db_index=True)
    bodies_purged_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["api_client", "created_at"])]

    def __str__(self) -> str:
        return self.public_id


class Job(models.Model):
    """A queued run (POST /api/v1/prompts/{slug}/jobs): validated and redacted when accepted, run by a
    worker. The placeholder mapping is kept sealed until the job ends, then deleted; the result (which
    holds the caller's rehydrated answer) is kept sealed until TOLLGATE_BODY_RETENTION_DAYS have passed."""

    public_id = models.CharField(max_length=40, unique=True, editable=False)
    api_client = models.ForeignKey("keys.ApiClient", on_delete=models.PROTECT, related_name="+", editable=False)
    environment = models.CharField(max_length=12, choices=Environment.choices, editable=False)
    prompt = models.ForeignKey(Prompt, on_delete=models.PROTECT, related_name="jobs", editable=False)
    version = models.ForeignKey(PromptVersion, on_delete=models.PROTECT, related_name="jobs", editable=False)
    status = models.CharField(max_length=12, choices=JobStatus.choices, default=JobStatus.QUEUED, editable=False)
    variables_redacted = models.JSONField(default=dict, editable=False)
    metadata = models.JSONField(default=dict, editable=False)
    mapping_ciphertext = models.TextField(blank=True, editable=False)
    mapping_kek_id = models.CharField(max_length=32, blank=True, editable=False)
    mapping_expires_at = models.DateTimeField(editable=False)
    callback_url = models.URLField(max_length=2000, blank=True, editable=False)
    attempts = models.PositiveIntegerField(default=0, editable=False)
    attempt_request_id = models.CharField(max_length=128, blank=True, editable=False)
    lease_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    run_public_id = models.CharField(max_length=40, blank=True, editable=False)
    result_ciphertext = models.TextField(blank=True, editable=False)
    result_kek_id = models.CharField(max_length=32, blank=True, editable=False)
    error = models.JSONField(default=dict, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True, editable=False)
    finished_at = models.DateTimeField(null=True, blank=True, editable=False)
    result_expires_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "created_at"])]

    def __str__(self) -> str:
        return self.public_id


class Batch(models.Model):
    """Many variable sets sent through Anthropic's Message Batches API at the batch price."""

    public_id = models.CharField(max_length=40, unique=True, editable=False)
    api_client = models.ForeignKey("keys.ApiClient", on_delete=models.PROTECT, related_name="+", editable=False)
    environment = models.CharField(max_length=12, choices=Environment.choices, editable=False)
    prompt = models.ForeignKey(Prompt, on_delete=models.PROTECT, related_name="batches", editable=False)
    version = models.ForeignKey(PromptVersion, on_delete=models.PROTECT, related_name="batches", editable=False)
    provider_key = models.ForeignKey("keys.ProviderKey", on_delete=models.PROTECT, related_name="+", editable=False)
    status = models.CharField(
        max_length=12, choices=BatchStatus.choices, default=BatchStatus.IN_PROGRESS, editable=False
    )
    provider_batch_ids = models.JSONField(default=list, editable=False)
    request_id = models.CharField(max_length=128, editable=False, help_text="The spend reservation's request id.")
    metadata = models.JSONField(default=dict, editable=False)
    mapping_ciphertext = models.TextField(blank=True, editable=False)
    mapping_kek_id = models.CharField(max_length=32, blank=True, editable=False)
    callback_url = models.URLField(max_length=2000, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False, db_index=True)
    ended_at = models.DateTimeField(null=True, blank=True, editable=False)
    result_expires_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "batches"

    def __str__(self) -> str:
        return self.public_id


class BatchItem(models.Model):
    """One request of a batch: its redacted request until submitted, then its sealed result."""

    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="items", editable=False)
    custom_id = models.CharField(max_length=64, editable=False)
    status = models.CharField(max_length=10, choices=ItemStatus.choices, default=ItemStatus.PENDING, editable=False)
    request_redacted = models.JSONField(default=list, editable=False, help_text="The messages sent (placeholders).")
    result_ciphertext = models.TextField(blank=True, editable=False)
    result_kek_id = models.CharField(max_length=32, blank=True, editable=False)
    error = models.JSONField(default=dict, blank=True, editable=False)

    class Meta:
        ordering = ["batch", "id"]
        constraints = [models.UniqueConstraint(fields=["batch", "custom_id"], name="batch_item_custom_id_unique")]

    def __str__(self) -> str:
        return f"{self.batch} {self.custom_id}"


class WebhookDelivery(models.Model):
    """One attempt to POST a job's or batch's final JSON to its callback URL."""

    job = models.ForeignKey(Job, null=True, blank=True, on_delete=models.CASCADE, related_name="deliveries")
    batch = models.ForeignKey(Batch, null=True, blank=True, on_delete=models.CASCADE, related_name="deliveries")
    url = models.URLField(max_length=2000, editable=False)
    attempt = models.PositiveIntegerField(editable=False)
    status_code = models.PositiveIntegerField(null=True, blank=True, editable=False)
    error = models.CharField(max_length=300, blank=True, editable=False)
    duration_ms = models.PositiveIntegerField(default=0, editable=False)
    delivered = models.BooleanField(default=False, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "webhook deliveries"

    def __str__(self) -> str:
        return f"{self.url} #{self.attempt}"


class EvaluationCase(models.Model):
    """A fixed input of a prompt and what its answer must satisfy. A prompt's active cases are its
    evaluation suite: run against a version before approval and every week against the live version."""

    prompt = models.ForeignKey(Prompt, on_delete=models.PROTECT, related_name="evaluation_cases")
    name = models.CharField(max_length=100)
    variables = models.JSONField(default=dict, blank=True, help_text="The variables the case runs with.")
    expectations = models.JSONField(
        default=list,
        help_text='What the answer must satisfy, each of: {"contains": "text"}, {"regex": "pattern"}, '
        '{"json_schema": {...}}, {"similar_to": "reference answer", "threshold": 0.8}.',
    )
    active = models.BooleanField(default=True, help_text="Inactive cases are kept but no longer run.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    history = HistoricalRecords(get_user=history_user)

    class Meta:
        ordering = ["prompt__slug", "name"]
        constraints = [models.UniqueConstraint(fields=["prompt", "name"], name="evaluation_case_name_unique")]

    def __str__(self) -> str:
        return f"{self.prompt.slug}: {self.name}"


class EvaluationRun(models.Model):
    """One evaluation of a version against its prompt's suite, with each case's result. Written by the
    evaluation job only; never edited afterwards."""

    version = models.ForeignKey(PromptVersion, on_delete=models.PROTECT, related_name="evaluation_runs")
    content_hash = models.CharField(max_length=64, help_text="The version's content hash when it was evaluated.")
    trigger = models.CharField(max_length=10, choices=EvaluationTrigger.choices)
    status = models.CharField(max_length=10, choices=EvaluationStatus.choices, default=EvaluationStatus.QUEUED)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    environment = models.CharField(
        max_length=12, choices=Environment.choices, help_text="Whose provider key and caps paid for the calls."
    )
    cases_total = models.PositiveIntegerField(default=0)
    cases_passed = models.PositiveIntegerField(default=0)
    pass_rate = models.FloatField(null=True, blank=True, help_text="Share of cases passed, 0 to 1.")
    results = models.JSONField(
        default=list,
        blank=True,
        help_text="Per case: name, passed, failures, error code, and the answer as sent (placeholders, not "
        "personal data).",
    )
    error = models.CharField(max_length=300, blank=True, help_text="Why the run could not evaluate at all.")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Evaluation of {self.version} ({self.get_status_display()})"

    @property
    def done(self) -> bool:
        return self.status in (EvaluationStatus.PASSED, EvaluationStatus.FAILED)
