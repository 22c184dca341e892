"""The gateway's records: runs (the request log), queued jobs, batches and their items, webhook deliveries."""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone

from core.environments import Environment
from gateway.choices import BatchStatus, ItemStatus, JobStatus


class Run(models.Model):
    """One run of a released prompt by an API client: its result (GET /api/v1/runs/{id}) and, until
    TOLLGATE_BODY_RETENTION_DAYS have passed, its redacted request and answer for incident
    investigation. Personal data never reaches this table: bodies hold placeholders."""

    public_id = models.CharField(max_length=40, unique=True, editable=False)
    request_id = models.CharField(max_length=128, editable=False)
    api_client = models.ForeignKey("keys.ApiClient", on_delete=models.PROTECT, related_name="+", editable=False)
    environment = models.CharField(max_length=12, choices=Environment.choices, editable=False)
    # Empty for a free-form call of the Anthropic-compatible endpoint (the caller's own system prompt).
    prompt = models.ForeignKey(
        "prompts.Prompt", on_delete=models.PROTECT, null=True, blank=True, related_name="runs", editable=False
    )
    version = models.ForeignKey(
        "prompts.PromptVersion", on_delete=models.PROTECT, null=True, blank=True, related_name="runs", editable=False
    )
    endpoint = models.CharField(max_length=10, editable=False)
    succeeded = models.BooleanField(editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False, db_index=True)
    result = models.JSONField(default=dict, editable=False, help_text="The run result, without the output.")
    request_redacted = models.TextField(blank=True, editable=False)
    output_redacted = models.TextField(blank=True, editable=False)
    bodies_expire_at = models.DateTimeField(editable=False, db_index=True)
    bodies_purged_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        db_table = "prompts_run"  # created by the prompts app; kept so no data moves
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
    prompt = models.ForeignKey("prompts.Prompt", on_delete=models.PROTECT, related_name="jobs", editable=False)
    version = models.ForeignKey("prompts.PromptVersion", on_delete=models.PROTECT, related_name="jobs", editable=False)
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
    due_at = models.DateTimeField(
        default=timezone.now,
        editable=False,
        help_text="When a worker is next due to take the job up (its queued message's countdown), or to "
        "deliver its callback once it ended. Long past, the message is presumed lost and queued again "
        "(gateway.tasks.redispatch).",
    )
    run_public_id = models.CharField(max_length=40, blank=True, editable=False)
    result_ciphertext = models.TextField(blank=True, editable=False)
    result_kek_id = models.CharField(max_length=32, blank=True, editable=False)
    error = models.JSONField(default=dict, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True, editable=False)
    finished_at = models.DateTimeField(null=True, blank=True, editable=False)
    result_expires_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        db_table = "prompts_job"  # created by the prompts app; kept so no data moves
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "created_at"])]

    def __str__(self) -> str:
        return self.public_id


class Batch(models.Model):
    """Many variable sets sent through Anthropic's Message Batches API at the batch price."""

    public_id = models.CharField(max_length=40, unique=True, editable=False)
    api_client = models.ForeignKey("keys.ApiClient", on_delete=models.PROTECT, related_name="+", editable=False)
    environment = models.CharField(max_length=12, choices=Environment.choices, editable=False)
    prompt = models.ForeignKey("prompts.Prompt", on_delete=models.PROTECT, related_name="batches", editable=False)
    version = models.ForeignKey(
        "prompts.PromptVersion", on_delete=models.PROTECT, related_name="batches", editable=False
    )
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
    cancel_initiated_at = models.DateTimeField(null=True, blank=True, editable=False)
    due_at = models.DateTimeField(
        default=timezone.now,
        editable=False,
        help_text="When a worker is due to send the batch, or to deliver its callback once it ended. Long past, "
        "the message is presumed lost and queued again (gateway.tasks.redispatch).",
    )
    ended_at = models.DateTimeField(null=True, blank=True, editable=False)
    result_expires_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        db_table = "prompts_batch"  # created by the prompts app; kept so no data moves
        ordering = ["-created_at"]
        verbose_name_plural = "batches"

    def __str__(self) -> str:
        return self.public_id


class BatchItem(models.Model):
    """One request of a batch: its redacted request until submitted, then its sealed result."""

    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="items", editable=False)
    custom_id = models.CharField(max_length=64, editable=False)
    status = models.CharField(max_length=10, choices=ItemStatus.choices, default=ItemStatus.PENDING, editable=False)
    request_redacted = models.JSONField(
        default=list,
        editable=False,
        help_text="What is sent (placeholders): the messages, or the whole body for a batch of the "
        "Anthropic-compatible endpoint.",
    )
    result_ciphertext = models.TextField(blank=True, editable=False)
    result_kek_id = models.CharField(max_length=32, blank=True, editable=False)
    error = models.JSONField(default=dict, blank=True, editable=False)

    class Meta:
        db_table = "prompts_batchitem"  # created by the prompts app; kept so no data moves
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
    next_attempt_at = models.DateTimeField(
        null=True,
        blank=True,
        editable=False,
        help_text="When the next attempt is due, while this is the last attempt and another follows.",
    )

    class Meta:
        db_table = "prompts_webhookdelivery"  # created by the prompts app; kept so no data moves
        ordering = ["-created_at"]
        indexes = [
            models.Index(
                fields=["next_attempt_at"], name="webhook_next_attempt", condition=Q(next_attempt_at__isnull=False)
            )
        ]
        verbose_name_plural = "webhook deliveries"

    def __str__(self) -> str:
        return f"{self.url} #{self.attempt}"


class DiscoveredPrompt(models.Model):
    """A system prompt seen on free-form calls of the Anthropic-compatible endpoint (docs/anthropic.md),
    inventoried by the hash of its redacted text per environment: who sends it, how often, at what cost.
    The redacted text is kept only until `text_expires_at` (TOLLGATE_BODY_RETENTION_DAYS after it was
    last seen); the counts stay."""

    environment = models.CharField(max_length=12, choices=Environment.choices, editable=False)
    system_hash = models.CharField(
        max_length=64, editable=False, help_text="SHA-256 of the system prompt as redacted (placeholders)."
    )
    text_redacted = models.TextField(blank=True, editable=False, help_text="The system prompt, redacted.")
    text_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    characters = models.PositiveIntegerField(default=0, editable=False)
    clients = models.ManyToManyField("keys.ApiClient", related_name="+", editable=False)
    last_model = models.CharField(
        max_length=100, blank=True, editable=False, help_text="The model of the latest call that sent it."
    )
    first_seen_at = models.DateTimeField(default=timezone.now, editable=False)
    last_seen_at = models.DateTimeField(default=timezone.now, editable=False, db_index=True)
    calls = models.PositiveBigIntegerField(default=0, editable=False)
    input_tokens = models.PositiveBigIntegerField(default=0, editable=False)
    output_tokens = models.PositiveBigIntegerField(default=0, editable=False)
    cost_usd = models.DecimalField(max_digits=24, decimal_places=10, default=0, editable=False)  # as the ledger
    personal_data = models.BooleanField(
        default=False, editable=False, help_text="Redaction replaced something in it on at least one call."
    )
    registered_version = models.ForeignKey(
        "prompts.PromptVersion",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        editable=False,
        help_text="The draft version it was registered as.",
    )

    class Meta:
        ordering = ["-last_seen_at"]
        constraints = [models.UniqueConstraint(fields=["environment", "system_hash"], name="discovered_prompt_unique")]

    def __str__(self) -> str:
        return f"{self.environment} {self.short_hash}"

    @property
    def short_hash(self) -> str:
        return self.system_hash[:12]

    @property
    def text_purged(self) -> bool:
        """Its text was blanked after the body retention (a prompt sent empty has no text to blank)."""
        return self.characters > 0 and not self.text_redacted
