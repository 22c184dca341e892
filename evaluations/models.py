"""Evaluation suites: a prompt's cases and each evaluation of a version against them."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone
from simple_history.models import HistoricalRecords

from core.environments import Environment
from core.governance import history_user
from evaluations.choices import EvaluationStatus, EvaluationTrigger


class EvaluationCase(models.Model):
    """A fixed input of a prompt and what its answer must satisfy. A prompt's active cases are its
    evaluation suite: run against a version before approval and every week against the live version."""

    prompt = models.ForeignKey("prompts.Prompt", on_delete=models.PROTECT, related_name="evaluation_cases")
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

    history = HistoricalRecords(get_user=history_user, table_name="prompts_historicalevaluationcase")

    class Meta:
        db_table = "prompts_evaluationcase"  # created by the prompts app; kept so no data moves
        ordering = ["prompt__slug", "name"]
        constraints = [models.UniqueConstraint(fields=["prompt", "name"], name="evaluation_case_name_unique")]

    def __str__(self) -> str:
        return f"{self.prompt.slug}: {self.name}"


class EvaluationRun(models.Model):
    """One evaluation of a version against its prompt's suite, with each case's result. Written by the
    evaluation job only; never edited afterwards."""

    version = models.ForeignKey("prompts.PromptVersion", on_delete=models.PROTECT, related_name="evaluation_runs")
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
        db_table = "prompts_evaluationrun"  # created by the prompts app; kept so no data moves
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Evaluation of {self.version} ({self.get_status_display()})"

    @property
    def done(self) -> bool:
        return self.status in (EvaluationStatus.PASSED, EvaluationStatus.FAILED)


class SystemPromptCount(models.Model):
    """A version's system prompt counted in tokens by Anthropic (`count_tokens`, on the development
    environment's key), once per content: the cost of a change compares the counts of the version in review
    and the live one. A failed count keeps its reason and is tried again after a while."""

    version = models.ForeignKey("prompts.PromptVersion", on_delete=models.PROTECT, related_name="system_prompt_counts")
    content_hash = models.CharField(max_length=64, help_text="The version's content hash when it was counted.")
    model = models.CharField(max_length=100, help_text="The model whose tokenizer counted.")
    tokens = models.PositiveIntegerField(
        null=True, blank=True, help_text="Input tokens of the system prompt with a one-character user message."
    )
    error = models.CharField(max_length=300, blank=True, help_text="Why the count failed (empty: it did not).")
    request_id = models.CharField(max_length=128, blank=True, help_text="The count's ledger row.")
    attempted_at = models.DateTimeField(default=timezone.now)
    counted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["version", "content_hash"], name="system_prompt_count_once_per_content")
        ]

    def __str__(self) -> str:
        return f"{self.version}: {self.tokens if self.tokens is not None else '—'} tokens"
