"""A job's row, not its message, is the record of work to do (docs/queue.md, Lost messages): a job whose
message was never published (the broker down), lost by the broker, or whose next message could not be
queued is queued again by the sweeper (`jobs_redispatch`) once it is overdue, and still ends exactly once.

The property test drives the job services through a broker of its own that fails publishes, loses and
duplicates messages in generated orders, on the sandbox; the tests marked `celery_worker` do the same
through real Redis and a real worker.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta

import pytest
from django.db.models import F
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from core.tasks import BrokerUnreachable
from gateway.jobs import JOB_RUN_TASK, job_execute, jobs_redispatch
from gateway.models import Job
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


class LossyBroker:
    """Messages of the job task, each publish's fate drawn from `fates` (then "queued" once they run out)."""

    def __init__(self, fates: list[str]) -> None:
        self.fates = iter(fates)
        self.messages: list[int] = []
        self.refused = 0

    def publish(self, name: str, *args: int) -> None:
        assert name == JOB_RUN_TASK
        fate = next(self.fates, "queued")
        if fate == "refused":
            self.refused += 1
            raise BrokerUnreachable("Error 111 connecting to the broker. Connection refused.")
        if fate != "lost":
            self.messages += [args[0]] * (2 if fate == "twice" else 1)

    def deliver(self, index: int) -> None:
        """A worker takes a message and runs the job task: the service, then its next message if any."""
        job_id = self.messages.pop(index % len(self.messages))
        if job_execute(job_id) is not None:
            with contextlib.suppress(BrokerUnreachable):  # the task fails; its message is acknowledged
                self.publish(JOB_RUN_TASK, job_id)


def time_passes(seconds: float) -> None:
    """The jobs' clock moves on: every due time and lease is that much further in the past."""
    delta = timedelta(seconds=seconds)
    Job.objects.update(due_at=F("due_at") - delta)
    Job.objects.filter(lease_expires_at__isnull=False).update(lease_expires_at=F("lease_expires_at") - delta)


@pytest.fixture
def broker(monkeypatch, settings):
    settings.TOLLGATE_QUEUE_RPM = 0
    settings.TOLLGATE_UPSTREAM_MAX_RETRIES = 0

    def install(fates: list[str]) -> LossyBroker:
        lossy = LossyBroker(fates)
        monkeypatch.setattr("core.tasks.task_enqueue", lossy.publish)
        monkeypatch.setattr("gateway.jobs.task_enqueue", lossy.publish)
        return lossy

    return install


def test_whatever_the_broker_loses_every_job_ends_once_with_a_ledger_row_per_call(
    world, broker, settings, django_capture_on_commit_callbacks
):
    patience = settings.TOLLGATE_REDISPATCH_SECONDS

    @hypothesis_settings(
        max_examples=25,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(
        fates=st.lists(PUBLISH, max_size=30),
        actions=st.lists(ACTION, min_size=1, max_size=12),
        overloaded=st.integers(0, 2),
    )
    def check(fates, actions, overloaded):
        world["sandbox"].call(lambda state: state.reset())
        if overloaded:
            inject(world, status=529, count=overloaded)  # a transient failure: the job's next message
        rows_before = UsageRecord.objects.filter(endpoint="job").count()
        lossy = broker(fates)
        accepted = []

        def submitted() -> None:
            with django_capture_on_commit_callbacks(execute=True):
                response = submit(world)
            assert response.status_code == 202, response.content  # a refused publish loses no job
            accepted.append(response.json()["id"])

        def overdue_swept() -> None:
            time_passes(patience + 1)
            unfinished, refused = Job.objects.exclude(status__in=["succeeded", "failed"]).count(), lossy.refused
            swept = jobs_redispatch()
            assert swept == unfinished if lossy.refused == refused else swept < unfinished

        submitted()
        for action, index in actions:
            if action == "submit":
                submitted()
            elif action == "deliver" and lossy.messages:
                lossy.deliver(index)
            elif action == "sweep":
                assert jobs_redispatch() == 0  # nothing is overdue before its patience has run out
            elif action == "time passes":
                overdue_swept()

        # Drain: deliver what is queued; when nothing is, the clock moves on and the sweeper runs.
        for _ in range(200):
            if lossy.messages:
                lossy.deliver(0)
            elif Job.objects.exclude(status__in=["succeeded", "failed"]).exists():
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

    check()


def test_a_job_is_not_queued_again_while_its_lease_runs_or_before_it_is_overdue(world, broker, settings):
    lossy = broker([])
    job_id = submit(world).json()["id"]  # the test's transaction never commits: nothing is published
    job = Job.objects.get(public_id=job_id)
    assert jobs_redispatch() == 0

    time_passes(settings.TOLLGATE_REDISPATCH_SECONDS - 5)
    assert jobs_redispatch() == 0
    time_passes(10)
    assert jobs_redispatch() == 1
    assert lossy.messages == [job.pk]
    assert jobs_redispatch() == 0  # queued again now: due again now

    Job.objects.filter(pk=job.pk).update(status="running", lease_expires_at=job.due_at + timedelta(hours=1))
    time_passes(settings.TOLLGATE_REDISPATCH_SECONDS + 1)
    assert jobs_redispatch() == 0  # its lease still runs
