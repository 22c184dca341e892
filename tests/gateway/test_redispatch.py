"""A job's row, not its message, is the record of work to do (docs/queue.md, Lost messages): a job whose
message was never published (the broker down), lost by the broker, or whose next message could not be
queued is queued again by the sweeper once it is overdue, and still ends exactly once; so is the delivery
of its callback, first attempt or retry.

The property test drives the job and webhook services through a broker of its own that refuses
publishes, loses and duplicates messages in generated orders, on the sandbox and a real receiver; the
tests marked `celery_worker` (test_jobs_worker.py) do the same through real Redis and a real worker.
"""

from __future__ import annotations

import contextlib
import json
from datetime import timedelta

import pytest
from django.db.models import F
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from core.tasks import BrokerUnreachable
from gateway.jobs import JOB_RUN_TASK, job_execute, jobs_redispatch
from gateway.models import Job, WebhookDelivery
from gateway.tasks import redispatch
from gateway.webhooks import WEBHOOK_DELIVER_TASK, webhook_attempt, webhooks_redispatch
from tests.gateway.test_jobs import submit
from tests.gateway.upstream import inject, sandbox_requests
from usage.models import SpendReservation, UsageRecord

pytestmark = pytest.mark.django_db

# What the broker does with one publish: takes it, refuses it (the publish fails), loses it afterwards,
# or delivers it twice.
PUBLISH = st.sampled_from(["queued", "queued", "refused", "lost", "twice"])
ACTION = st.one_of(
    st.tuples(st.just("deliver"), st.integers(0, 20)),
    st.tuples(st.just("submit"), st.just(0)),
    st.tuples(st.just("sweep"), st.just(0)),
    st.tuples(st.just("time passes"), st.just(0)),
)
FINAL = ["succeeded", "failed"]


class LossyBroker:
    """Messages of the job and webhook tasks, each publish's fate drawn from `fates` (then "queued")."""

    def __init__(self, fates: list[str]) -> None:
        self.fates = iter(fates)
        self.messages: list[tuple[str, tuple]] = []
        self.refused = 0

    def publish(self, name: str, *args) -> None:
        assert name in (JOB_RUN_TASK, WEBHOOK_DELIVER_TASK)
        fate = next(self.fates, "queued")
        if fate == "refused":
            self.refused += 1
            raise BrokerUnreachable("Error 111 connecting to the broker. Connection refused.")
        if fate != "lost":
            self.messages += [(name, args)] * (2 if fate == "twice" else 1)

    def deliver(self, index: int) -> None:
        """A worker takes a message and runs its task: the service, then the task's next message if any."""
        name, args = self.messages.pop(index % len(self.messages))
        if name == JOB_RUN_TASK:
            again = job_execute(*args) is not None
        else:
            kind, pk, attempt = args
            again, args = webhook_attempt(kind, pk, attempt) is not None, (kind, pk, attempt + 1)
        if again:
            with contextlib.suppress(BrokerUnreachable):  # the task fails; its message is acknowledged
                self.publish(name, *args)


def time_passes(seconds: float) -> None:
    """The clock moves on for the queued work: every due time is that much further in the past."""
    delta = timedelta(seconds=seconds)
    Job.objects.update(due_at=F("due_at") - delta)
    Job.objects.filter(lease_expires_at__isnull=False).update(lease_expires_at=F("lease_expires_at") - delta)
    WebhookDelivery.objects.filter(next_attempt_at__isnull=False).update(next_attempt_at=F("next_attempt_at") - delta)


def unfinished() -> int:
    """Jobs not ended, and callbacks neither delivered nor given up, that the sweeper may take up."""
    jobs = Job.objects.exclude(status__in=FINAL).count()
    first = Job.objects.filter(status__in=FINAL).exclude(callback_url="").filter(deliveries__isnull=True).count()
    return jobs + first + WebhookDelivery.objects.filter(next_attempt_at__isnull=False).count()


@pytest.fixture
def broker(monkeypatch, settings):
    settings.TOLLGATE_QUEUE_RPM = 0
    settings.TOLLGATE_UPSTREAM_MAX_RETRIES = 0

    def install(fates: list[str]) -> LossyBroker:
        lossy = LossyBroker(fates)
        for module in ("core.tasks", "gateway.jobs", "gateway.webhooks"):
            monkeypatch.setattr(f"{module}.task_enqueue", lossy.publish)
        return lossy

    return install


def test_whatever_the_broker_loses_every_job_ends_once_and_calls_back(
    world, broker, receiver, settings, django_capture_on_commit_callbacks
):
    patience = settings.TOLLGATE_REDISPATCH_SECONDS

    @hypothesis_settings(
        max_examples=25,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(
        fates=st.lists(PUBLISH, max_size=40),
        actions=st.lists(ACTION, min_size=1, max_size=14),
        overloaded=st.integers(0, 2),
        hook_failures=st.lists(st.sampled_from([500, 503, 302]), max_size=2),
    )
    # The job's message taken; the publish of its callback's first attempt, then of a retry, refused.
    @example(fates=["queued", "refused"], actions=[("deliver", 0)], overloaded=0, hook_failures=[])
    @example(fates=["queued", "queued", "refused"], actions=[("deliver", 0)] * 2, overloaded=0, hook_failures=[500])
    def check(fates, actions, overloaded, hook_failures):
        world["sandbox"].call(lambda state: state.reset())
        if overloaded:
            inject(world, status=529, count=overloaded)  # a transient failure: the job's next message
        receiver.statuses, receiver.received = list(hook_failures), []
        Job.objects.all().delete()  # an earlier example's (a failing one's, while shrinking) with its deliveries
        rows_before = UsageRecord.objects.filter(endpoint="job").count()
        lossy = broker(fates)
        accepted = []
        cut_short = False  # a sweep stopped at a refused publish: what it did not queue is still overdue

        def submitted() -> None:
            with django_capture_on_commit_callbacks(execute=True):
                response = submit(world, callback_url=receiver.url)
            assert response.status_code == 202, response.content  # a refused publish loses no job
            accepted.append(response.json()["id"])

        def delivered_one(index: int) -> None:
            with django_capture_on_commit_callbacks(execute=True):  # a worker's transactions commit
                lossy.deliver(index)

        def overdue_swept() -> None:
            nonlocal cut_short
            time_passes(patience + 1)
            waiting, refused = unfinished(), lossy.refused
            swept = redispatch_counted()
            cut_short = lossy.refused > refused
            assert swept < waiting if cut_short else swept == waiting

        submitted()
        for action, index in actions:
            if action == "submit":
                submitted()
            elif action == "deliver" and lossy.messages:
                delivered_one(index)
            elif action == "sweep" and not cut_short:
                assert redispatch_counted() == 0  # nothing is overdue before its patience has run out
            elif action == "time passes":
                overdue_swept()

        # Drain: deliver what is queued; when nothing is, the clock moves on and the sweeper runs.
        for _ in range(300):
            if lossy.messages:
                delivered_one(0)
            elif unfinished():
                overdue_swept()
            else:
                break

        jobs = Job.objects.filter(public_id__in=accepted)
        assert list(jobs.values_list("status", flat=True)) == ["succeeded"] * len(accepted)
        finals = UsageRecord.objects.filter(request_id__in=jobs.values("attempt_request_id"), outcome="ok")
        assert finals.count() == len(accepted)  # each job's result is its last attempt's call
        calls = [r for r in sandbox_requests(world) if r["path"] == "/v1/messages" and r["retry_count"] == 0]
        assert UsageRecord.objects.filter(endpoint="job").count() - rows_before == len(calls)
        assert not SpendReservation.objects.filter(status="held").exists()
        # Every callback arrived (at least once), carrying its job as it ended.
        delivered = {json.loads(body)["id"]: json.loads(body) for _, body in receiver.received if body}
        assert set(delivered) >= set(accepted)
        assert all(delivered[job_id]["status"] == "succeeded" for job_id in accepted)
        assert WebhookDelivery.objects.filter(job__public_id__in=accepted, delivered=True).count() >= len(accepted)

    check()


def redispatch_counted() -> int:
    """The beat task's sweeps (the task itself returns nothing), counted."""
    return jobs_redispatch() + webhooks_redispatch()


def test_a_job_is_not_queued_again_while_its_lease_runs_or_before_it_is_overdue(world, broker, settings):
    lossy = broker([])
    job_id = submit(world).json()["id"]  # the test's transaction never commits: nothing is published
    job = Job.objects.get(public_id=job_id)
    assert jobs_redispatch() == 0

    time_passes(settings.TOLLGATE_REDISPATCH_SECONDS - 5)
    assert jobs_redispatch() == 0
    time_passes(10)
    assert jobs_redispatch() == 1
    assert lossy.messages == [(JOB_RUN_TASK, (job.pk,))]
    assert jobs_redispatch() == 0  # queued again now: due again now

    Job.objects.filter(pk=job.pk).update(status="running", lease_expires_at=job.due_at + timedelta(hours=1))
    time_passes(settings.TOLLGATE_REDISPATCH_SECONDS + 1)
    assert jobs_redispatch() == 0  # its lease still runs


def test_the_beat_task_runs_the_sweeper(world, broker, settings):
    lossy = broker([])
    submit(world)  # never published
    time_passes(settings.TOLLGATE_REDISPATCH_SECONDS + 1)
    redispatch()
    assert [name for name, _ in lossy.messages] == [JOB_RUN_TASK]
