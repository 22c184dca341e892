"""Callbacks of jobs and batches (DESIGN.md §6 Webhooks): the final JSON, POSTed and signed with the API
client's webhook secret as `Tollgate-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`.

Every attempt is recorded (WebhookDelivery). A non-2xx answer, a redirect (never followed) or a network
error is retried with exponential backoff, up to TOLLGATE_WEBHOOK_MAX_ATTEMPTS.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
from functools import partial
from typing import Any

from django.conf import settings
from django.db import transaction

from keys.services import api_client_webhook_secret
from prompts.models import Batch, Job, WebhookDelivery

TIMEOUT_SECONDS = 10
USER_AGENT = "Tollgate-Webhooks/1"


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a 3xx is answered as an HTTPError: a failed attempt


_opener = urllib.request.build_opener(_NoRedirects)


def signature(secret: str, body: bytes, at: int) -> str:
    digest = hmac.new(secret.encode(), f"{at}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={at},v1={digest}"


def webhook_enqueue(kind: str, pk: int) -> None:
    """Deliver the final JSON of a "job" or "batch" once the current transaction commits."""
    from prompts.tasks import webhook_deliver  # the task module imports this one

    transaction.on_commit(partial(webhook_deliver.delay, kind, pk, 1))


def _payload(kind: str, pk: int) -> tuple[Job | Batch, dict[str, Any]]:
    if kind == "job":
        from prompts.runtime.jobs import job_detail

        job = Job.objects.select_related("api_client", "version__prompt").get(pk=pk)
        return job, job_detail(job)
    from prompts.runtime.batches import batch_detail

    batch = Batch.objects.select_related("api_client", "version__prompt").get(pk=pk)
    return batch, batch_detail(batch)


def webhook_attempt(kind: str, pk: int, attempt: int) -> float | None:
    """POST the final JSON once. Returns None when done (delivered, or out of attempts), else the seconds
    to wait before the next attempt."""
    target, payload = _payload(kind, pk)
    body = json.dumps(payload, ensure_ascii=False).encode()
    at = int(time.time())
    request = urllib.request.Request(  # noqa: S310  (https, or loopback when allowed: callback_url_validate)
        target.callback_url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "Tollgate-Signature": signature(api_client_webhook_secret(client=target.api_client), body, at),
            "Tollgate-Delivery-Attempt": str(attempt),
        },
    )
    status, error = None, ""
    began = time.perf_counter()
    try:
        with _opener.open(request, timeout=TIMEOUT_SECONDS) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        status, error = exc.code, f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        error = type(getattr(exc, "reason", exc)).__name__
    delivered = status is not None and 200 <= status < 300
    WebhookDelivery.objects.create(
        job=target if isinstance(target, Job) else None,
        batch=target if isinstance(target, Batch) else None,
        url=target.callback_url,
        attempt=attempt,
        status_code=status,
        error=error[:300],
        duration_ms=round((time.perf_counter() - began) * 1000),
        delivered=delivered,
    )
    if delivered or attempt >= settings.TOLLGATE_WEBHOOK_MAX_ATTEMPTS:
        return None
    return float(min(settings.TOLLGATE_WEBHOOK_BACKOFF_SECONDS * 2 ** (attempt - 1), 3600))
