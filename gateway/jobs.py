"""Queued runs (docs/contract.md §3, the queue path): accepted at once, run by a worker through the same pipeline.

A job is validated and redacted when it is accepted, so bad input is refused before anything is queued.
A worker then claims it with a lease, draws a turn from the environment's upstream budget (`throttle`),
and runs it. Claims are compare-and-swap under a row lock, and the result is written only by the attempt
that holds the claim, so a redelivered message (acks_late: a worker killed mid-job) leads to exactly one
recorded result. The killed attempt's upstream call, if it was made, gets its ledger row when the next
attempt takes over (see `_attempt_lost`).

The job's row, not its message, is the record of work to do. A message can be lost without a worker ever
seeing it (a publish that failed while the broker was down, a broker restarted without it): each job
carries when a worker is next due to take it up, and a beat task queues again every job long overdue
(`jobs_redispatch`). A message too many only finds the job claimed or ended.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from core.context import RequestContext, bound, new_request_id
from core.errors import JobExpired, JobNotFound, SpendCapExceeded, UnreadableSetting, UpstreamError, VersionTampered
from core.problems import domain_problem_body, problem_body
from core.tasks import BrokerUnreachable, task_enqueue, task_enqueue_on_commit
from gateway import throttle
from gateway.choices import JobStatus
from gateway.egress import callback_url_validate
from gateway.models import Job
from gateway.pipeline import Intake, metadata_intake, public_id, run_execute, run_intake, run_prepare
from gateway.redaction.engine import Redaction
from gateway.sealing import sealed_for, unsealed
from gateway.webhooks import webhook_enqueue
from keys.models import ApiClient
from usage.choices import Endpoint, ReservationStatus
from usage.models import SpendReservation
from usage.settlement import spend_reservation_abandon

logger = logging.getLogger(__name__)

JOB_RUN_TASK = "prompts.tasks.job_run"
FINAL = (JobStatus.SUCCEEDED, JobStatus.FAILED)
# Upstream failures worth another attempt later (the SDK has already retried them quickly).
TRANSIENT = {"upstream_rate_limited", "upstream_overloaded", "upstream_error", "upstream_timeout"}


# --- accepting a job --------------------------------------------------------------------------------------


def job_submit(
    *, client: ApiClient, slug: str, variables: Any, metadata: dict[str, str], callback_url: str = ""
) -> Job:
    """Validate and redact now (the documented 400/403/404 before anything is queued), store, enqueue."""
    intake = run_intake(client=client, slug=slug, variables=variables)
    metadata = metadata_intake(metadata)
    callback_url = callback_url_validate(callback_url)
    job = Job(
        public_id=public_id("job_"),
        api_client=client,
        environment=client.environment,
        prompt_id=intake.version.prompt_id,
        version=intake.version,
        variables_redacted=intake.values,
        metadata=metadata,
        callback_url=callback_url,
        mapping_expires_at=timezone.now() + timedelta(hours=settings.TOLLGATE_JOB_MAPPING_TTL_HOURS),
    )
    mapping = sealed_for("job_mapping", job.public_id, job.environment, intake.redaction.to_json())
    job.mapping_ciphertext, job.mapping_kek_id = mapping.ciphertext, mapping.key_id
    with transaction.atomic():
        job.save()
        task_enqueue_on_commit(JOB_RUN_TASK, job.pk, swept=True)
    return job


# --- running a job ----------------------------------------------------------------------------------------


def job_execute(job_id: int) -> float | None:
    """Run the job if it is this worker's to run. Returns None when nothing more is to be done for it, or
    the seconds after which to try again (budget exhausted, another worker's claim still running, or a
    transient upstream failure with attempts left)."""
    job = Job.objects.filter(pk=job_id).first()
    if job is None or job.status in FINAL:
        return None
    delay = _execute(job)
    if delay is not None:
        _due_in(job, delay)
    return delay


def _due_in(job: Job, delay: float) -> None:
    """Record when the job's next message is due, for the sweeper; a message that keeps coming back
    (waiting for a turn) writes it only when it has moved by a quarter of the sweeper's patience."""
    due = timezone.now() + timedelta(seconds=delay)
    if abs((due - job.due_at).total_seconds()) > settings.TOLLGATE_REDISPATCH_SECONDS / 4:
        Job.objects.filter(pk=job.pk).update(due_at=due)


def _execute(job: Job) -> float | None:
    job_id = job.pk
    now = timezone.now()
    if job.status == JobStatus.RUNNING and job.lease_expires_at and job.lease_expires_at > now:
        return (job.lease_expires_at - now).total_seconds() + 0.5
    slot = throttle.slot_take(job.environment)
    if slot is None:
        return 0.25
    try:
        wait = throttle.rate_take(job.environment)
        if wait:
            return wait
        claimed = _claim(job_id)
        if claimed is None:
            return None if Job.objects.filter(pk=job_id, status__in=FINAL).exists() else 0.25
        job, lost_request_id = claimed
        if lost_request_id:
            _attempt_lost(job, lost_request_id)
        with bound(RequestContext(request_id=job.attempt_request_id)):
            delay = _attempt(job)
        # Logged under the request that queued the job; the attempt's id is the ledger row's request id.
        logger.info(
            "Job %s: attempt %s %s", job, job.attempt_request_id, "ended" if delay is None else "will be retried"
        )
        return delay
    finally:
        throttle.slot_give_back(job.environment, slot)


def _claim(job_id: int) -> tuple[Job, str] | None:
    """Take the job (queued, or running under an expired lease) for one attempt: (job, the request id of
    an attempt that died holding it, or "")."""
    now = timezone.now()
    with transaction.atomic():
        job = Job.objects.select_for_update().select_related("api_client", "version__prompt").get(pk=job_id)
        if job.status in FINAL or (
            job.status == JobStatus.RUNNING and job.lease_expires_at and job.lease_expires_at > now
        ):
            return None
        lost = job.attempt_request_id if job.status == JobStatus.RUNNING else ""
        job.status = JobStatus.RUNNING
        job.attempts += 1
        job.attempt_request_id = new_request_id()
        job.lease_expires_at = now + timedelta(seconds=settings.TOLLGATE_JOB_LEASE_SECONDS)
        job.started_at = job.started_at or now
        job.save(update_fields=["status", "attempts", "attempt_request_id", "lease_expires_at", "started_at"])
    return job, lost


def _attempt_lost(job: Job, request_id: str) -> None:
    """An attempt died (worker killed) after reserving spend: its call may have reached Anthropic. Every
    reservation it still holds is given back and its call gets a ledger row (tokens unknown) from the
    reservation's write-ahead record. A reservation that was closed already has its ledger row."""
    for reservation in SpendReservation.objects.filter(request_id=request_id, status=ReservationStatus.HELD):
        spend_reservation_abandon(reservation=reservation, error_class="WorkerLost")
    logger.warning("Job %s: attempt %s was lost with its worker; recorded and released", job, request_id)


def _attempt(job: Job) -> float | None:
    if job.mapping_expires_at <= timezone.now():
        _finish(job, error=domain_problem_body(JobExpired("The job was not run before its mapping expired.")))
        return None
    redaction = Redaction.from_json(
        unsealed("job_mapping", job.public_id, job.environment, job.mapping_ciphertext, job.mapping_kek_id)
    )
    try:
        prepared = run_prepare(
            client=job.api_client,
            slug=job.version.prompt.slug,
            variables=None,
            metadata=job.metadata,
            endpoint=Endpoint.JOB,
            request_id=job.attempt_request_id,
            intake=Intake(version=job.version, values=job.variables_redacted, redaction=redaction),
        )
        result = run_execute(prepared)
    except UpstreamError as exc:
        if exc.code in TRANSIENT and job.attempts < settings.TOLLGATE_JOB_MAX_ATTEMPTS:
            Job.objects.filter(pk=job.pk, attempt_request_id=job.attempt_request_id).update(
                status=JobStatus.QUEUED, lease_expires_at=None
            )
            return float(exc.retry_after or 5 * 2**job.attempts)
        _finish(job, error=domain_problem_body(exc))
        return None
    except (SpendCapExceeded, VersionTampered, UnreadableSetting) as exc:
        _finish(job, error=domain_problem_body(exc))
        return None
    except Exception:
        _finish(
            job,
            error=problem_body(
                code="internal_error",
                title="Internal error",
                status_code=500,
                detail="The job failed unexpectedly; the incident is logged.",
            ),
        )
        raise
    _finish(job, result=result)
    return None


def _finish(job: Job, *, result: dict[str, Any] | None = None, error: dict[str, Any] | None = None) -> None:
    """Record the outcome, if this attempt still holds the claim; drop the mapping; fire the callback."""
    now = timezone.now()
    fields: dict[str, Any] = {
        "status": JobStatus.SUCCEEDED if result is not None else JobStatus.FAILED,
        "finished_at": now,
        "lease_expires_at": None,
        "mapping_ciphertext": "",
        "mapping_kek_id": "",
        "error": error or {},
        "result_expires_at": now + timedelta(days=settings.TOLLGATE_BODY_RETENTION_DAYS),
    }
    if result is not None:
        sealed = sealed_for("job_result", job.public_id, job.environment, json.dumps(result))
        fields.update(run_public_id=result["id"], result_ciphertext=sealed.ciphertext, result_kek_id=sealed.key_id)
    with transaction.atomic():
        won = Job.objects.filter(pk=job.pk, status=JobStatus.RUNNING, attempt_request_id=job.attempt_request_id).update(
            **fields
        )
        if won and job.callback_url:
            webhook_enqueue("job", job.pk)
    if not won:
        logger.warning("Job %s: attempt %s lost its claim; its result was not recorded", job, job.attempt_request_id)


def jobs_redispatch(limit: int = 1000) -> int:
    """Queue again each job that no worker took up TOLLGATE_REDISPATCH_SECONDS after it was due — queued,
    or running under a lease that ran out that long ago (the beat task). Returns how many were queued."""
    now = timezone.now()
    stale = now - timedelta(seconds=settings.TOLLGATE_REDISPATCH_SECONDS)
    overdue = Job.objects.filter(
        Q(status=JobStatus.QUEUED) | Q(status=JobStatus.RUNNING, lease_expires_at__lt=stale), due_at__lt=stale
    )
    queued = []
    for job in overdue.order_by("due_at").only("pk", "public_id", "status", "due_at")[:limit]:
        try:
            task_enqueue(JOB_RUN_TASK, job.pk)
        except BrokerUnreachable:
            break  # the next sweep tries again
        logger.warning("Job %s: %s and not taken up since %s; queued again", job, job.status, job.due_at.isoformat())
        queued.append(job.pk)
    Job.objects.filter(pk__in=queued, due_at__lt=stale).update(due_at=now)  # not one a worker wrote meanwhile
    return len(queued)


# --- reading a job ----------------------------------------------------------------------------------------


def job_for_client(*, client: ApiClient, job_id: str) -> Job:
    job = Job.objects.select_related("version__prompt").filter(public_id=job_id, api_client=client).first()
    if job is None:
        raise JobNotFound(f"This client has no job '{job_id[:40]}'.")
    return job
