from __future__ import annotations

from django.db import models


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class BatchStatus(models.TextChoices):
    IN_PROGRESS = "in_progress", "In progress"
    CANCELING = "canceling", "Canceling"
    ENDED = "ended", "Ended"
    FAILED = "failed", "Failed"


class ItemStatus(models.TextChoices):
    """A batch item's result, as the Message Batches API names it (`pending` until the batch ends)."""

    PENDING = "pending", "Pending"
    SUCCEEDED = "succeeded", "Succeeded"
    ERRORED = "errored", "Errored"
    CANCELED = "canceled", "Canceled"
    EXPIRED = "expired", "Expired"
