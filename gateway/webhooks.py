"""Callbacks of jobs and batches (docs/contract.md §6 Webhooks): the final JSON, POSTed and signed with the API
client's webhook secret as `Tollgate-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`.

Every attempt is recorded (WebhookDelivery). A non-2xx answer, a redirect (never followed), a host that
does not resolve or a network error is retried with exponential backoff, up to TOLLGATE_WEBHOOK_MAX_ATTEMPTS.
A URL the egress checks refuse (gateway.egress: an address that is not public, a host not in the
allow-list) is recorded once with that reason and never tried again.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import logging
import time
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core.errors import EgressRefused
from core.tasks import BrokerUnreachable, task_enqueue, task_enqueue_on_commit
from gateway.choices import BatchStatus, JobStatus
from gateway.egress import Unresolvable, egress_post
from gateway.models import Batch, Job, WebhookDelivery
from gateway.selectors import batch_detail, job_detail
from keys.services import api_client_webhook_secret

logger = logging.getLogger(__name__)

USER_AGENT = "Tollgate-Webhooks/1"
FINAL_STATUSES = {"job": [JobStatus.SUCCEEDED, JobStatus.FAILED], "batch": [BatchStatus.ENDED, BatchStatus.FAILED]}
WEBHOOK_DELIVER_TASK = "prompts.tasks.webhook_deliver"


def signature(secret: str, body: bytes, at: int) -> str:
    digest = hmac.new(secret.encode(), f"{at}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={at},v1={digest}"


def webhook_enqueue(kind: str, pk: int) -> None:
    """Deliver the final JSON of a "job" or "batch" once the current transaction commits; its first
    attempt is due now (the sweeper's mark, should the message be lost)."""
    (Job if kind == "job" else Batch).objects.filter(pk=pk).update(due_at=timezone.now())
    task_enqueue_on_commit(WEBHOOK_DELIVER_TASK, kind, pk, 1, swept=True)


def _payload(kind: str, pk: int) -> tuple[Job | Batch, dict[str, Any]]:
    if kind == "job":
        job = Job.objects.select_related("api_client", "version__prompt").get(pk=pk)
        return job, job_detail(job)
    batch = Batch.objects.select_related("api_client", "version__prompt").get(pk=pk)
    return batch, batch_detail(batch)


def webhook_attempt(kind: str, pk: int, attempt: int) -> float | None:
    """POST the final JSON once. Returns None when done (delivered, refused by the egress checks, or out of
    attempts), else the seconds to wait before the next attempt."""
    target, payload = _payload(kind, pk)
    body = json.dumps(payload, ensure_ascii=False).encode()
    at = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "Tollgate-Signature": signature(api_client_webhook_secret(client=target.api_client), body, at),
        "Tollgate-Delivery-Attempt": str(attempt),
    }
    status, error, final = None, "", False
    began = time.perf_counter()
    try:
        status = egress_post(target.callback_url, body=body, headers=headers)
        if not 200 <= status < 300:
            error = f"HTTP {status}"  # a 3xx too: its Location is not followed
    except EgressRefused as exc:
        error, final = exc.reason, True  # never retried: another attempt would only probe the target again
    except Unresolvable:
        error = "unresolvable"
    except (OSError, http.client.HTTPException) as exc:
        error = type(exc).__name__
    delivered = status is not None and 200 <= status < 300
    retry = None
    if not (delivered or final or attempt >= settings.TOLLGATE_WEBHOOK_MAX_ATTEMPTS):
        retry = float(min(settings.TOLLGATE_WEBHOOK_BACKOFF_SECONDS * 2 ** (attempt - 1), 3600))
    now = timezone.now()
    with transaction.atomic():
        target.deliveries.filter(next_attempt_at__isnull=False).update(next_attempt_at=None)
        WebhookDelivery.objects.create(
            job=target if isinstance(target, Job) else None,
            batch=target if isinstance(target, Batch) else None,
            url=target.callback_url,
            attempt=attempt,
            status_code=status,
            error=error[:300],
            duration_ms=round((time.perf_counter() - began) * 1000),
            delivered=delivered,
            created_at=now,
            next_attempt_at=None if retry is None else now + timedelta(seconds=retry),
        )
    return retry


def webhooks_redispatch(limit: int = 1000) -> int:
    """Queue again each callback attempt no worker made TOLLGATE_REDISPATCH_SECONDS after it was due (its
    message lost; the beat task `redispatch`): a job's or batch's first, or the retry after an attempt
    that failed. Returns how many were queued. An attempt queued twice may be made twice: webhooks are
    delivered at least once."""
    now = timezone.now()
    stale = now - timedelta(seconds=settings.TOLLGATE_REDISPATCH_SECONDS)
    horizon = now - timedelta(days=1)  # callbacks of jobs and batches that ended before are not chased
    due: list[tuple[str, int, int, Any]] = []  # (kind, pk, attempt, the row whose mark is moved on)
    for retry in WebhookDelivery.objects.filter(next_attempt_at__lt=stale).order_by("next_attempt_at")[:limit]:
        kind, pk = ("job", retry.job_id) if retry.job_id else ("batch", retry.batch_id)
        due.append((kind, pk or 0, retry.attempt + 1, retry))
    for kind, model, ended in (("job", Job, "finished_at"), ("batch", Batch, "ended_at")):
        first = (
            model.objects.exclude(callback_url="")
            .filter(**{f"{ended}__gt": horizon}, due_at__lt=stale, deliveries__isnull=True)
            .filter(status__in=FINAL_STATUSES[kind])
        )
        due += [(kind, target.pk, 1, target) for target in first.only("pk", "due_at")[:limit]]
    queued = 0
    for kind, pk, attempt, mark in due:
        try:
            task_enqueue(WEBHOOK_DELIVER_TASK, kind, pk, attempt)
        except BrokerUnreachable:
            break  # the next sweep tries again
        logger.warning("Webhook of %s %s: attempt %s not made when due; queued again", kind, pk, attempt)
        field = "next_attempt_at" if isinstance(mark, WebhookDelivery) else "due_at"
        type(mark).objects.filter(pk=mark.pk).update(**{field: now})
        queued += 1
    return queued
