"""Reads of the gateway: runs, jobs and batches as the API shows them, and the queue's state."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

from django.db.models import Count, Min, Q
from django.utils import timezone

from core.environments import Environment
from gateway.choices import BatchStatus, ItemStatus, JobStatus
from gateway.documents import BatchDocument, JobDocument, StoredRun, document
from gateway.models import Batch, Job, Run
from gateway.sealing import unsealed


def run_detail(run: Run) -> dict[str, Any]:
    """A past run as GET /api/v1/runs/{id} shows it: the result, with the output as stored (placeholders
    instead of personal data), or null once bodies have expired."""
    return document(
        StoredRun,
        **{
            **run.result,
            "output": None if run.bodies_purged_at else run.output_redacted,
            "output_redacted": True,
            "bodies_expire_at": run.bodies_expire_at,
        },
    )


def job_detail(job: Job) -> dict[str, Any]:
    """GET /api/v1/jobs/{id}: the status and, once done, the run result (or the problem it failed with)."""
    result = None
    if job.result_ciphertext:
        result = json.loads(
            unsealed("job_result", job.public_id, job.environment, job.result_ciphertext, job.result_kek_id)
        )
    return document(
        JobDocument,
        id=job.public_id,
        status=job.status,
        prompt={"slug": job.version.prompt.slug, "version": job.version.number},
        environment=job.environment,
        attempts=job.attempts,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        result=result,
        error=job.error or None,
        callback_url=job.callback_url or None,
    )


def batch_detail(batch: Batch) -> dict[str, Any]:
    """GET /api/v1/batches/{id}: the status and the items per status."""
    counts = Counter(batch.items.values_list("status", flat=True))
    return document(
        BatchDocument,
        id=batch.public_id,
        status=batch.status,
        prompt={"slug": batch.version.prompt.slug, "version": batch.version.number},
        environment=batch.environment,
        model=batch.version.model,
        counts={"total": sum(counts.values()), **{status: counts.get(status, 0) for status in ItemStatus.values}},
        created_at=batch.created_at,
        ended_at=batch.ended_at,
        results_url=f"/api/v1/batches/{batch.public_id}/results",
        callback_url=batch.callback_url or None,
    )


def batch_results_lines(batch: Batch) -> Iterator[str]:
    """JSON Lines, one per item: custom_id, status, output or error (constant memory)."""
    for item in batch.items.only("custom_id", "status", "result_ciphertext", "result_kek_id", "error").iterator():
        if item.result_ciphertext:
            row = json.loads(
                unsealed(
                    "batch_item",
                    f"{batch.public_id}/{item.custom_id}",
                    batch.environment,
                    item.result_ciphertext,
                    item.result_kek_id,
                )
            )
        else:
            row = {"custom_id": item.custom_id, "status": item.status, "output": None, "error": item.error or None}
        yield json.dumps(row, ensure_ascii=False) + "\n"


def queue_state() -> list[dict[str, Any]]:
    """Per environment: jobs queued and running, the age of the oldest queued job, open batches."""
    now = timezone.now()
    jobs = {
        row["environment"]: row
        for row in Job.objects.filter(status__in=[JobStatus.QUEUED, JobStatus.RUNNING])
        .values("environment")
        .annotate(
            queued=Count("pk", filter=Q(status=JobStatus.QUEUED)),
            running=Count("pk", filter=Q(status=JobStatus.RUNNING)),
            oldest=Min("created_at", filter=Q(status=JobStatus.QUEUED)),
        )
    }
    batches = dict(
        Batch.objects.filter(status__in=[BatchStatus.IN_PROGRESS, BatchStatus.CANCELING])
        .values_list("environment")
        .annotate(Count("pk"))
    )
    return [
        {
            "environment": environment.value,
            "label": environment.label,
            "queued": jobs.get(environment.value, {}).get("queued", 0),
            "running": jobs.get(environment.value, {}).get("running", 0),
            "oldest_queued_seconds": (
                round((now - oldest).total_seconds())
                if (oldest := jobs.get(environment.value, {}).get("oldest"))
                else None
            ),
            "open_batches": batches.get(environment.value, 0),
        }
        for environment in Environment
    ]
