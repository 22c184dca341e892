"""Jobs through real Celery workers on PostgreSQL and Redis: the lifecycle, a spike against a rate-limited
upstream, a worker process killed with SIGKILL in the middle of a job, and messages the broker never took
or lost (the sweeper queues their jobs again)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator

import httpx2
import pytest

from config.celery_app import app
from gateway.jobs import jobs_redispatch
from gateway.models import Job, WebhookDelivery
from tests.conftest import ROOT, start_worker, stop_worker
from tests.gateway.test_jobs import submit
from tests.gateway.upstream import EMAIL
from usage.models import SpendReservation, UsageRecord

pytestmark = [pytest.mark.celery_worker, pytest.mark.django_db(transaction=True)]


def wait_for(condition: Callable[[], bool], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.1)


def finished(*ids: str) -> Callable[[], bool]:
    return lambda: Job.objects.filter(public_id__in=ids, status__in=["succeeded", "failed"]).count() == len(ids)


def test_a_worker_runs_the_job_and_calls_back(world, celery_worker, receiver):
    response = submit(world, callback_url=receiver.url)
    assert response.json()["status"] == "queued"

    wait_for(finished(response.json()["id"]))
    wait_for(lambda: WebhookDelivery.objects.filter(delivered=True).exists())

    job = world["http"].get(response["Location"]).json()
    assert job["status"] == "succeeded"
    assert EMAIL in job["result"]["output"]
    assert UsageRecord.objects.get().endpoint == "job"


def test_the_worker_logs_under_the_request_id_of_the_call_that_queued_the_job(world, celery_worker):
    trace = f"trace-{time.monotonic_ns()}"
    body = {"variables": {"ticket": "A ticket", "customer_email": EMAIL}}
    response = world["http"].post("/api/v1/prompts/support-summary/jobs", body, format="json", HTTP_X_REQUEST_ID=trace)
    job_id = response.json()["id"]

    wait_for(finished(job_id))

    log = ROOT / "var" / "test-celery-worker.log"
    wait_for(lambda: f"Job {job_id}: attempt" in log.read_text())
    lines = [json.loads(line) for line in log.read_text().splitlines() if f"Job {job_id}: attempt" in line]
    assert [line["request_id"] for line in lines] == [trace]
    attempt = UsageRecord.objects.get().request_id  # the ledger row names the attempt the line names
    assert lines[0]["message"] == f"Job {job_id}: attempt {attempt} ended"


def test_a_spike_drains_under_the_upstream_rate_without_a_429(world, celery_worker):
    """13 jobs at once against a sandbox that refuses a 13th call within a minute: the workers' budget
    (11 a minute) spreads them over more than a minute, and none meets a 429."""
    sandbox = world["sandbox"].url
    httpx2.post(f"{sandbox}/_sandbox/ratelimit", json={"rpm": 12}).raise_for_status()
    began = time.monotonic()
    try:
        ids = [submit(world).json()["id"] for _ in range(13)]
        wait_for(finished(*ids), seconds=150)
        refused = httpx2.get(f"{sandbox}/_sandbox/ratelimit").json()["rate_limited"]
    finally:
        httpx2.post(f"{sandbox}/_sandbox/ratelimit", json={"rpm": 0})

    assert refused == 0
    assert set(Job.objects.values_list("status", "attempts")) == {("succeeded", 1)}
    assert UsageRecord.objects.filter(outcome="ok").count() == 13
    assert time.monotonic() - began > 60


@pytest.fixture
def killable_worker() -> Iterator[subprocess.Popen[bytes]]:
    """A prefork worker with one child on a queue of its own, with a short job lease."""
    queue = "tollgate-test-kill"
    process = start_worker(
        "killable", queue, "--pool", "prefork", "--concurrency", "1", env={"TOLLGATE_JOB_LEASE_SECONDS": "4"}
    )
    app.conf.task_always_eager, app.conf.task_default_queue = False, queue
    try:
        yield process
    finally:
        app.conf.task_always_eager, app.conf.task_default_queue = True, "tollgate-test"
        stop_worker(process)


def test_a_worker_killed_mid_job_leaves_one_result_and_a_ledger_row_for_each_call(world, killable_worker):
    sandbox = world["sandbox"].url
    httpx2.post(f"{sandbox}/_sandbox/latency", json={"ms": 3000}).raise_for_status()
    try:
        job_id = submit(world).json()["id"]
        wait_for(lambda: len(messages_received(sandbox)) == 1)  # the call is in flight
        children = subprocess.run(["pgrep", "-P", str(killable_worker.pid)], capture_output=True, text=True).stdout
        for pid in children.split():
            os.kill(int(pid), signal.SIGKILL)
        httpx2.post(f"{sandbox}/_sandbox/latency", json={"ms": 0}).raise_for_status()
        wait_for(finished(job_id))
    finally:
        httpx2.post(f"{sandbox}/_sandbox/latency", json={"ms": 0})

    job = Job.objects.get(public_id=job_id)
    assert (job.status, job.attempts) == ("succeeded", 2)
    assert len(messages_received(sandbox)) == 2
    rows = UsageRecord.objects.order_by("created_at")
    assert [(row.outcome, row.error_class) for row in rows] == [("server_error", "WorkerLost"), ("ok", "")]
    assert not SpendReservation.objects.filter(status="held").exists()


def messages_received(sandbox: str) -> list[dict]:
    requests = httpx2.get(f"{sandbox}/_sandbox/requests").json()["requests"]
    return [request for request in requests if request["path"] == "/v1/messages"]


@pytest.fixture
def broker_down():
    """Publishes go to a Redis that is not there (through kombu, with one quick retry), until the block ends."""

    def redirect(url: str) -> None:
        app.conf.update(broker_url=url)
        for holder, pool in ((app, "_pool"), (app.amqp, "_producer_pool")):
            setattr(holder, pool, None)  # a pool holds connections to the broker it was made for

    @contextlib.contextmanager
    def down() -> Iterator[None]:
        url, policy = app.conf.broker_url, app.conf.task_publish_retry_policy
        app.conf.task_publish_retry_policy = {"max_retries": 1, "interval_start": 0.1}
        redirect("redis://127.0.0.1:1/0")
        try:
            yield
        finally:
            redirect(url)
            app.conf.task_publish_retry_policy = policy

    return down


def test_a_job_accepted_while_the_broker_is_down_is_run_by_the_sweeper_once_it_is_back(
    world, celery_worker, broker_down, settings
):
    with broker_down():
        response = submit(world)
    assert response.status_code == 202  # the job is stored; its message could not be published
    job_id = response.json()["id"]
    time.sleep(1)
    assert Job.objects.get(public_id=job_id).status == "queued"

    settings.TOLLGATE_REDISPATCH_SECONDS = 0  # overdue at once
    assert jobs_redispatch() == 1

    wait_for(finished(job_id))
    job = Job.objects.get(public_id=job_id)
    assert (job.status, job.attempts) == ("succeeded", 1)
    assert UsageRecord.objects.get().request_id == job.attempt_request_id


def test_a_job_whose_message_the_broker_lost_is_queued_again(world, celery_worker, settings):
    void = "tollgate-test-void"  # a queue no worker reads, emptied: the message is gone
    app.conf.task_default_queue = void
    try:
        job_id = submit(world).json()["id"]
    finally:
        app.conf.task_default_queue = settings.CELERY_TASK_DEFAULT_QUEUE
    with app.connection_for_write() as connection:
        assert connection.default_channel.queue_purge(void) == 1
    time.sleep(1)
    assert Job.objects.get(public_id=job_id).status == "queued"

    settings.TOLLGATE_REDISPATCH_SECONDS = 0
    assert jobs_redispatch() == 1

    wait_for(finished(job_id))
    assert Job.objects.get(public_id=job_id).status == "succeeded"
    assert UsageRecord.objects.count() == 1
