from __future__ import annotations

from django.db import models


class EvaluationStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    PASSED = "passed", "Passed"
    FAILED = "failed", "Failed"


class EvaluationTrigger(models.TextChoices):
    MANUAL = "manual", "Run by a person"
    SCHEDULED = "scheduled", "Weekly production evaluation"
