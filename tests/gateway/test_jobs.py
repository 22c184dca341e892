"""Queued runs: POST /api/v1/prompts/{slug}/jobs, GET /api/v1/jobs/{id}, signed webhooks, the upstream budget.

In-process (eager) on the embedded default; the tests marked `celery_worker` use a real worker on
PostgreSQL and Redis.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import httpx2
import pytest
from rest_framework.test import APIClient as HttpClient

from gateway.models import Job, WebhookDelivery
from keys import services as key_services
from tests.factories import DANGLING_CHECKS, setting_store_unchecked
from tests.gateway.upstream import EMAIL, PHONE, TICKET, inject, sandbox_requests
from usage.models import SpendReservation, UsageRecord

pytestmark = pytest.mark.django_db


def submit(world, variables=None, **extra):
    body = {"variables": variables or {"ticket": TICKET, "customer_email": EMAIL}, **extra}
    return world["http"].post("/api/v1/prompts/support-summary/jobs", body, format="json")


@pytest.fixture
def run_on_commit(django_capture_on_commit_callbacks):
    """Tasks are queued when the transaction commits: run them (in-process) at the end of the block."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


def test_a_job_is_accepted_then_run_and_its_result_read_back(world, run_on_commit):
    with run_on_commit():
        response = submit(world, metadata={"feature": "triage"})

    assert response.status_code == 202
    accepted = response.json()
    assert accepted["id"].startswith("job_")
    assert accepted["status"] == "queued"
    assert response["Location"] == f"/api/v1/jobs/{accepted['id']}"
    done = world["http"].get(response["Location"]).json()
    assert done["status"] == "succeeded"
    assert done["attempts"] == 1
    assert EMAIL in done["result"]["output"]
    assert PHONE in done["result"]["output"]
    assert done["result"]["redactions"] == {"CUSTOMER_EMAIL": 1, "PHONE": 1}
    row = UsageRecord.objects.get()
    assert (row.endpoint, row.outcome, row.feature) == ("job", "ok", "triage")
    assert SpendReservation.objects.get().status == "settled"


def test_personal_data_is_redacted_before_queueing_and_the_mapping_is_dropped_after(world, run_on_commit):
    with run_on_commit():
        job_id = submit(world).json()["id"]

    sent = json.dumps(sandbox_requests(world))
    assert EMAIL not in sent
    assert PHONE not in sent
    job = Job.objects.get(public_id=job_id)
    stored = json.dumps([list(values) for values in Job.objects.values_list()], default=str)
    assert EMAIL not in stored
    assert PHONE not in stored
    assert job.variables_redacted["customer_email"] == "<CUSTOMER_EMAIL_1>"
    assert job.mapping_ciphertext == ""


def test_bad_input_is_refused_at_once_and_nothing_is_queued(world, run_on_commit):
    with run_on_commit():
        response = submit(world, {"ticket": 42})
        https_only = submit(world, callback_url="http://example.com/hook")

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_variables"
    assert response.json()["errors"] == {"ticket": "must be a string", "customer_email": "is required"}
    assert https_only.status_code == 400
    assert https_only.json()["errors"] == {"callback_url": "must be https"}
    assert not Job.objects.exists()
    assert sandbox_requests(world) == []


def test_someone_elses_job_is_not_found(world, custodian, run_on_commit):
    with run_on_commit():
        job_id = submit(world).json()["id"]
    other, _ = key_services.api_client_create(
        actor=custodian, name="other-app", environment="production", owner=custodian, all_prompts=True
    )
    _, token = key_services.api_token_issue(actor=custodian, client=other, label="t")

    response = HttpClient().get(f"/api/v1/jobs/{job_id}", HTTP_AUTHORIZATION=f"Bearer {token}")

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_a_transient_upstream_failure_is_retried_later_and_each_call_has_its_ledger_row(world, run_on_commit):
    inject(world, status=529, count=3)  # more than the SDK's own 2 retries: the first attempt fails

    with run_on_commit():
        job_id = submit(world).json()["id"]

    job = world["http"].get(f"/api/v1/jobs/{job_id}").json()
    assert job["status"] == "succeeded"
    assert job["attempts"] == 2
    assert sorted(UsageRecord.objects.values_list("outcome", flat=True)) == ["ok", "overloaded"]
    assert SpendReservation.objects.filter(status="held").count() == 0


def test_a_job_that_keeps_failing_ends_failed_with_the_documented_problem(world, settings, run_on_commit):
    settings.TOLLGATE_JOB_MAX_ATTEMPTS = 1
    inject(world, status=500, count=3)

    with run_on_commit():
        job_id = submit(world).json()["id"]

    job = world["http"].get(f"/api/v1/jobs/{job_id}").json()
    assert job["status"] == "failed"
    assert job["result"] is None
    assert (job["error"]["code"], job["error"]["status"]) == ("upstream_error", 502)
    assert UsageRecord.objects.get().outcome == "server_error"


def test_a_job_accepted_before_its_versions_setting_became_unreadable_fails_with_that_problem(
    world, django_capture_on_commit_callbacks
):
    """Accepted under the checks before the specs, run after: the job fails with the setting's problem (as a
    run answers) and nothing is called or paid, instead of an unexpected error raised from the task."""
    with django_capture_on_commit_callbacks() as queued:
        job_id = submit(world).json()["id"]
    setting_store_unchecked(world["version"], "output_checks", DANGLING_CHECKS)

    for task in queued:
        task()

    job = world["http"].get(f"/api/v1/jobs/{job_id}").json()
    assert job["status"] == "failed"
    assert (job["error"]["title"], job["error"]["status"]) == ("Prompt version setting unreadable", 500)
    assert sandbox_requests(world) == []
    assert not UsageRecord.objects.exists()


def test_the_callback_is_signed_and_retried_after_a_500(world, receiver, run_on_commit):
    receiver.statuses = [500]

    with run_on_commit():
        job_id = submit(world, callback_url=receiver.url).json()["id"]

    assert len(receiver.received) == 2
    headers, body = receiver.received[-1]
    secret = key_services.api_client_webhook_secret(client=world["client"])
    stamp, signature = (part.split("=", 1)[1] for part in headers["Tollgate-Signature"].split(","))
    expected = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(signature, expected)
    assert abs(int(stamp) - time.time()) < 60
    payload = json.loads(body)
    assert (payload["id"], payload["status"]) == (job_id, "succeeded")
    assert EMAIL in payload["result"]["output"]  # the caller's own endpoint gets the answer rehydrated
    attempts = list(WebhookDelivery.objects.order_by("attempt").values_list("attempt", "status_code", "delivered"))
    assert attempts == [(1, 500, False), (2, 200, True)]
    assert secret not in json.dumps([list(row) for row in WebhookDelivery.objects.values_list()], default=str)


def test_a_redirecting_callback_is_not_followed(world, receiver, settings, run_on_commit):
    settings.TOLLGATE_WEBHOOK_MAX_ATTEMPTS = 2
    receiver.statuses = [302, 302]

    with run_on_commit():
        submit(world, callback_url=receiver.url)

    assert list(WebhookDelivery.objects.values_list("status_code", "delivered")) == [(302, False), (302, False)]
    assert len(receiver.received) == 2  # two POSTs to the callback; the Location was never asked


def test_the_queue_keeps_under_the_upstream_rate_so_a_spike_meets_no_429(world, settings, run_on_commit):
    httpx2.post(f"{world['sandbox'].url}/_sandbox/ratelimit", json={"rpm": 300}).raise_for_status()
    settings.TOLLGATE_QUEUE_RPM = 290
    try:
        began = time.monotonic()
        with run_on_commit():
            ids = [submit(world).json()["id"] for _ in range(8)]
        elapsed = time.monotonic() - began
        refused = httpx2.get(f"{world['sandbox'].url}/_sandbox/ratelimit").json()["rate_limited"]
    finally:
        httpx2.post(f"{world['sandbox'].url}/_sandbox/ratelimit", json={"rpm": 0})

    assert refused == 0
    assert set(Job.objects.filter(public_id__in=ids).values_list("status", flat=True)) == {"succeeded"}
    assert elapsed >= 7 * 60 / 290  # spaced at the budget's rate


def test_without_the_budget_the_same_spike_meets_429s(world, settings, run_on_commit):
    """The counter-check of the test above: the sandbox's rate-limit mode does refuse a burst."""
    httpx2.post(f"{world['sandbox'].url}/_sandbox/ratelimit", json={"rpm": 3}).raise_for_status()
    settings.TOLLGATE_QUEUE_RPM = 0
    settings.TOLLGATE_UPSTREAM_MAX_RETRIES = 0
    settings.TOLLGATE_JOB_MAX_ATTEMPTS = 1
    try:
        with run_on_commit():
            for _ in range(5):
                submit(world)
        refused = httpx2.get(f"{world['sandbox'].url}/_sandbox/ratelimit").json()["rate_limited"]
    finally:
        httpx2.post(f"{world['sandbox'].url}/_sandbox/ratelimit", json={"rpm": 0})

    assert refused >= 2


def test_staff_see_the_queue_and_the_jobs_without_personal_data(world, approver, client):
    submit(world)  # never run: the test transaction does not commit, so it stays queued
    client.force_login(approver)

    listing = client.get("/admin/gateway/job/")
    job = Job.objects.get()
    detail = client.get(f"/admin/gateway/job/{job.pk}/change/")

    assert listing.status_code == 200
    queue = listing.content.decode().split('aria-label="Queue"')[1].split("</table>")[0]
    assert "Production</td><td>1</td><td>0</td>" in queue.replace("\n", "").replace(" ", "")
    assert detail.status_code == 200
    assert "&lt;CUSTOMER_EMAIL_1&gt;" in detail.content.decode()
    assert EMAIL not in detail.content.decode()
    assert client.post(f"/admin/gateway/job/{job.pk}/delete/").status_code == 403
