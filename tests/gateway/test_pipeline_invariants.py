"""Invariants of the run pipeline, hunted with generated inputs and fault sequences against the sandbox:

- every upstream call the sandbox received (a retry is part of its call) has exactly one ledger row, and no
  reservation is left `held` once the request or job has ended — whatever the upstream fault (429, 500, 529,
  timeout, dropped connection, a stream broken off), a fault of Tollgate's own after the call, a caller who
  leaves mid-stream, or a budget alert crossing its threshold;
- a call never costs more than its reservation held, so a cap's counter never passes the cap;
- across concurrent runs (PostgreSQL), a cap's counter never exceeds the cap.
"""

from __future__ import annotations

import json
import threading
from decimal import Decimal

import httpx2
import pytest
from django.db import connection
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from rest_framework.test import APIClient as HttpClient

from keys import services as key_services
from tests.factories import version_content
from tests.gateway.upstream import close_response, sandbox_requests
from usage.choices import CapScope, Period
from usage.models import BudgetAlert, SpendCounter, SpendReservation, UsageRecord
from usage.services import Cap, spend_settle
from usage.settlement import spend_reserve

FAULTS = [None, 429, 500, 529, "disconnect", "stream_error", "timeout"]
step = st.fixed_dictionaries(
    {
        "endpoint": st.sampled_from(["run", "stream", "job"]),
        "fault": st.sampled_from(FAULTS),
        "fault_count": st.integers(1, 2),
        "broken_after_call": st.booleans(),
        "leave_after_events": st.sampled_from([None, None, 1, 2]),
        "ticket": st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=400),
    }
)


def _upstream_calls(sandbox) -> int:
    requests = httpx2.get(f"{sandbox.url}/_sandbox/requests").json()["requests"]
    return sum(1 for r in requests if r["path"] == "/v1/messages" and r["retry_count"] == 0)


def _do(world, spec, monkeypatch) -> None:
    sandbox = world["sandbox"]
    if spec["fault"] is not None:
        fault = {"status": spec["fault"], "count": spec["fault_count"]}
        if spec["fault"] == "timeout":
            fault["seconds"] = 1
        httpx2.post(f"{sandbox.url}/_sandbox/faults", json=fault).raise_for_status()
    with monkeypatch.context() as patched:
        if spec["broken_after_call"]:

            def broken(checks, output):
                raise RuntimeError("a fault of Tollgate's own after the call")

            patched.setattr("gateway.pipeline.output_checks_run", broken)
        _send(world, spec)


def _send(world, spec) -> None:
    capture = world["capture"]
    body = {"variables": {"ticket": spec["ticket"], "customer_email": "jane.doe@example.com"}}
    http = world["http"]
    if spec["endpoint"] == "job":
        try:
            with capture(execute=True):  # the job runs in-process when its transaction commits
                response = http.post(
                    "/api/v1/prompts/support-summary/jobs", json.dumps(body), content_type="application/json"
                )
        except RuntimeError:  # a fault of our own fails the job, and the worker re-raises it to be logged
            assert spec["broken_after_call"]
            return
        assert response.status_code in (202, 402), response.content
        return
    with capture(execute=True):
        body["stream"] = spec["endpoint"] == "stream"
        response = http.post("/api/v1/prompts/support-summary/run", json.dumps(body), content_type="application/json")
        assert response.status_code < 600
        if body["stream"] and response.status_code == 200:
            events = iter(response.streaming_content)
            for index, _ in enumerate(events):
                if spec["leave_after_events"] is not None and index + 1 >= spec["leave_after_events"]:
                    break
            close_response(response)


def _steps_keep_the_ledger_and_the_caps(world, monkeypatch, *, examples: int, steps, scale: int = 1) -> None:
    """Run generated steps; after each example: one ledger row per upstream call, no hold left, no
    call costing more than it held, and the key's cap not passed."""

    @hypothesis_settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        derandomize=True,
    )
    @given(steps=steps)
    def check(steps):
        world["sandbox"].call(lambda state: state.reset())
        rows_before = UsageRecord.objects.exclude(outcome="cap_exceeded").count()
        for spec in steps:
            _do(world, {**spec, "ticket": spec["ticket"] * scale}, monkeypatch)

        rows = UsageRecord.objects.exclude(outcome="cap_exceeded").count() - rows_before
        assert rows == _upstream_calls(world["sandbox"])
        assert not SpendReservation.objects.filter(status="held").exists()
        for reservation in SpendReservation.objects.filter(status="settled"):
            assert reservation.settled_usd <= reservation.amount_usd
        for counter in SpendCounter.objects.filter(scope="provider_key"):
            assert counter.reserved_usd == 0
            assert counter.spent_usd <= world["key"].monthly_cap_usd

    check()


@pytest.fixture
def settings_(settings):
    """Fast upstream failures: one SDK retry, a short timeout, quick job retries."""
    settings.TOLLGATE_UPSTREAM_MAX_RETRIES = 1
    settings.TOLLGATE_UPSTREAM_TIMEOUT = 0.5
    settings.TOLLGATE_JOB_MAX_ATTEMPTS = 2
    return settings


@pytest.mark.django_db
def test_every_upstream_call_has_one_ledger_row_and_no_hold_outlives_its_request(
    world, monkeypatch, settings_, django_capture_on_commit_callbacks
):
    world["http"].raise_request_exception = False
    world["capture"] = django_capture_on_commit_callbacks

    _steps_keep_the_ledger_and_the_caps(world, monkeypatch, examples=10, steps=st.lists(step, min_size=1, max_size=3))


@pytest.mark.django_db
def test_runs_against_a_tight_cap_cross_its_alerts_and_never_pass_it(
    world, custodian, monkeypatch, settings_, django_capture_on_commit_callbacks
):
    key = world["key"] = key_services.provider_key_update(
        actor=custodian, key=world["key"], reason="tight", monthly_cap_usd=Decimal("0.1")
    )
    cap = Cap(CapScope.PROVIDER_KEY, key.cap_id, Period.MONTH, key.monthly_cap_usd, key.label)
    earlier = spend_reserve(request_id="earlier", caps=[cap], amount=Decimal("0.0795"))
    spend_settle(reservation=earlier, actual=Decimal("0.0795"))  # just under 80 %: the first paid run crosses it
    world["http"].raise_request_exception = False
    world["capture"] = django_capture_on_commit_callbacks

    _steps_keep_the_ledger_and_the_caps(
        world, monkeypatch, examples=5, steps=st.lists(step, min_size=3, max_size=5), scale=5
    )
    assert BudgetAlert.objects.exists()  # the runs crossed the cap's alert threshold on the way


# --- concurrency (PostgreSQL: SQLite serialises every writer) ----------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_concurrent_runs_never_take_a_cap_past_its_limit(sandbox, author, approver, custodian, settings):
    if connection.vendor != "postgresql":
        pytest.skip("concurrent writers need PostgreSQL; SQLite serialises them (BEGIN IMMEDIATE)")
    from prompts import services

    settings.TOLLGATE_UPSTREAM_MAX_RETRIES = 0
    prompt = services.prompt_create(actor=author, slug="support-summary", name="S", purpose="x", owner=author)
    version = services.prompt_version_create(
        actor=author, prompt=prompt, content=version_content(max_tokens=60), change_summary="v1"
    )
    services.prompt_version_submit(actor=author, version=version)
    services.prompt_version_approve(actor=approver, version=version, note="ok")
    for environment in ("staging", "production"):
        services.prompt_version_release(actor=approver, version=version, environment=environment, reason="x")
    key_services.provider_key_create(
        actor=custodian, environment="production", label="raced", secret="sk-ant-sandbox-test-key-0009",
        owner=custodian, base_url=sandbox.url, monthly_cap_usd=Decimal("0.03"),
    )  # fmt: skip
    client, _ = key_services.api_client_create(
        actor=custodian, name="raced", environment="production", owner=custodian, all_prompts=True,
        rate_limit_per_minute=10_000,
    )  # fmt: skip
    _, token = key_services.api_token_issue(actor=custodian, client=client, label="t")

    @settings_hypothesis
    @given(tickets=st.lists(st.text(min_size=1, max_size=300), min_size=8, max_size=16))
    def check(tickets):
        statuses: list[int] = []

        def one(ticket: str) -> None:
            http = HttpClient()
            http.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
            body = {"variables": {"ticket": ticket, "customer_email": "a@example.com"}}
            try:
                response = http.post(
                    "/api/v1/prompts/support-summary/run", json.dumps(body), content_type="application/json"
                )
                statuses.append(response.status_code)
            finally:
                connection.close()

        threads = [threading.Thread(target=one, args=(ticket,)) for ticket in tickets]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert set(statuses) <= {200, 400, 402}  # 400: a generated ticket that cannot be sent (NUL)
        counter = SpendCounter.objects.get(scope="provider_key")
        assert counter.spent_usd <= Decimal("0.03")
        assert counter.reserved_usd == 0
        ledger = sum(UsageRecord.objects.values_list("cost_usd", flat=True), Decimal(0))
        assert counter.spent_usd == ledger  # the counter and the ledger agree

    check()
    assert SpendCounter.objects.get(scope="provider_key").spent_usd > 0
    assert len(sandbox_requests({"sandbox": sandbox})) > 0


settings_hypothesis = hypothesis_settings(
    max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture], derandomize=True
)
