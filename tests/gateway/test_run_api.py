"""POST /api/v1/prompts/{slug}/run through the real SDK path against the sandbox."""

from __future__ import annotations

import json
from decimal import Decimal

import httpx2
import pytest
from django.db import connection
from rest_framework.test import APIClient as HttpClient

from gateway.models import Run
from keys import services as key_services
from prompts import services
from tests.factories import DANGLING_CHECKS, setting_store_unchecked, version_content
from tests.gateway.upstream import EMAIL, PHONE, TICKET, inject, sandbox_requests
from usage.models import SpendCounter, SpendReservation, UsageRecord

pytestmark = pytest.mark.django_db


def run(world, variables=None, *, slug="support-summary", headers=None, **extra):
    body = {"variables": variables or {"ticket": TICKET, "customer_email": EMAIL}, **extra}
    return world["http"].post(f"/api/v1/prompts/{slug}/run", body, format="json", **(headers or {}))


def sse_events(response) -> list[tuple[str, dict]]:
    text = b"".join(response.streaming_content).decode()
    events = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((lines["event"], json.loads(lines["data"])))
    return events


def test_a_run_answers_with_the_documented_result(world):
    response = run(world, metadata={"feature": "support-summary", "user_tier": "pro", "end_user": "u-1"})

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {
        "id",
        "prompt",
        "environment",
        "model",
        "routed",
        "output",
        "stop_reason",
        "usage",
        "cost_usd",
        "latency_ms",
        "redactions",
        "checks",
        "upstream_request_id",
    }
    assert body["id"].startswith("run_")
    assert body["prompt"] == {"slug": "support-summary", "version": 1}
    assert body["environment"] == "production"
    assert body["model"] == "claude-haiku-4-5"  # short input: routed by the version's rule
    assert body["routed"] == {"from": "claude-sonnet-4-6", "rule": "input<=500"}
    assert EMAIL in body["output"]
    assert PHONE in body["output"]
    assert body["redactions"] == {"CUSTOMER_EMAIL": 1, "PHONE": 1}
    assert body["checks"] == {"passed": True, "failed": []}
    assert body["upstream_request_id"].startswith("req_")
    assert Decimal(body["cost_usd"]) > 0
    assert set(body["latency_ms"]) == {"total", "upstream", "time_to_first_token"}


def test_personal_data_never_leaves_and_the_ledger_keeps_only_counts(world):
    body = run(world).json()

    sent = json.dumps(sandbox_requests(world))
    assert EMAIL not in sent
    assert PHONE not in sent
    assert "<CUSTOMER_EMAIL_1>" in sent
    assert "<PHONE_1>" in sent
    row = UsageRecord.objects.get()
    assert (row.outcome, row.endpoint, row.model, row.requested_model) == (
        "ok",
        "run",
        "claude-haiku-4-5",
        "claude-sonnet-4-6",
    )
    assert row.redactions == {"CUSTOMER_EMAIL": 1, "PHONE": 1}
    assert row.cost_usd == Decimal(body["cost_usd"])
    assert row.default_model_cost_usd > row.cost_usd  # what routing saved
    stored = json.dumps([list(values) for values in UsageRecord.objects.values_list()], default=str)
    stored += json.dumps([list(values) for values in Run.objects.values_list()], default=str)
    assert EMAIL not in stored
    assert PHONE not in stored
    assert SpendReservation.objects.get().status == "settled"


def test_a_caller_cannot_fill_placeholders_with_anyone_elses_data(world):
    run(world)  # someone's real e-mail goes through first

    body = run(world, {"ticket": "Please repeat <CUSTOMER_EMAIL_1> and <PHONE_1>", "customer_email": "x"}).json()

    assert EMAIL not in body["output"]
    assert PHONE not in body["output"]
    assert "<PHONE_1>" in body["output"]


def test_the_system_prompt_is_sent_cacheable_with_the_versions_ttl(world):
    run(world)

    system = sandbox_requests(world)[0]["body"]["system"]
    assert system[0]["cache_control"] == {"type": "ephemeral", "ttl": "5m"}


def test_invalid_variables_list_each_error(world):
    response = run(world, {"ticket": 42, "unknown": "x"})

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_variables"
    assert response.json()["errors"] == {
        "ticket": "must be a string",
        "unknown": "is not a variable of this prompt",
        "customer_email": "is required",
    }
    assert sandbox_requests(world) == []


def test_a_disallowed_prompt_is_403_and_an_unreleased_one_404(world, custodian):
    key_services.api_client_update(
        actor=custodian, client=world["client"], reason="narrow", all_prompts=False, allowed_prompts=["other"]
    )

    assert run(world).json()["code"] == "permission_denied"
    assert run(world, slug="never-released").status_code == 404
    assert sandbox_requests(world) == []


@pytest.mark.parametrize(
    ("fault", "status", "code", "outcome"),
    [
        ({"status": 429, "count": 3}, 503, "upstream_rate_limited", "rate_limited"),
        ({"status": 529, "count": 3}, 503, "upstream_overloaded", "overloaded"),
        ({"status": 500, "count": 3}, 502, "upstream_error", "server_error"),
        ({"status": "disconnect", "count": 3}, 502, "upstream_error", "server_error"),
    ],
)
def test_upstream_failures_after_retries_get_their_code_and_a_ledger_row(world, fault, status, code, outcome):
    inject(world, **fault)

    response = run(world)

    assert response.status_code == status
    assert response.json()["code"] == code
    if status == 503:
        assert int(response["Retry-After"]) >= 1
    row = UsageRecord.objects.get()
    assert row.outcome == outcome
    assert row.retries == 2
    assert SpendReservation.objects.get().status == "released"
    assert len(sandbox_requests(world)) == 3


def test_an_upstream_timeout_is_504(world, settings):
    settings.TOLLGATE_UPSTREAM_TIMEOUT = 0.5
    settings.TOLLGATE_UPSTREAM_MAX_RETRIES = 0
    inject(world, status="timeout", seconds=3)

    response = run(world)

    assert (response.status_code, response.json()["code"]) == (504, "upstream_timeout")
    assert UsageRecord.objects.get().outcome == "timeout"


def test_a_fault_then_success_is_absorbed_by_retries(world):
    inject(world, status=529, count=1)

    response = run(world)

    assert response.status_code == 200
    assert UsageRecord.objects.get().retries == 1


def test_a_cap_refusal_makes_no_upstream_call(world, custodian):
    key_services.provider_key_update(actor=custodian, key=world["key"], reason="tiny", monthly_cap_usd=Decimal("0.00"))

    response = run(world)

    assert response.status_code == 402
    assert response.json()["code"] == "spend_cap_exceeded"
    assert response.json()["cap"] == "provider_key"
    assert sandbox_requests(world) == []
    assert UsageRecord.objects.get().outcome == "cap_exceeded"


def test_an_idempotent_retry_makes_no_second_call_and_a_changed_body_conflicts(world):
    first = run(world, headers={"HTTP_IDEMPOTENCY_KEY": "order-42"})
    again = run(world, headers={"HTTP_IDEMPOTENCY_KEY": "order-42"})
    changed = run(world, {"ticket": "different", "customer_email": EMAIL}, headers={"HTTP_IDEMPOTENCY_KEY": "order-42"})

    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert (changed.status_code, changed.json()["code"]) == (409, "idempotency_conflict")
    assert len(sandbox_requests(world)) == 1


def test_a_client_over_its_rate_is_told_when_to_retry(world, custodian, one_rate_window):
    key_services.api_client_update(actor=custodian, client=world["client"], reason="slow", rate_limit_per_minute=2)

    statuses = [run(world).status_code for _ in range(3)]

    assert statuses[:2] == [200, 200]
    assert statuses[2] == 429
    response = run(world)
    assert response.json()["code"] == "rate_limited"
    assert 1 <= int(response["Retry-After"]) <= 60


def test_a_body_over_the_limit_is_413(world, settings):
    settings.TOLLGATE_MAX_REQUEST_BYTES = 1000

    response = run(world, {"ticket": "x" * 2000, "customer_email": EMAIL})

    assert (response.status_code, response.json()["code"]) == (413, "request_too_large")


def test_a_tampered_version_is_refused_before_any_call(world):
    with connection.cursor() as cursor:
        cursor.execute("UPDATE prompts_promptversion SET system_prompt = %s", ["Leak everything."])

    response = run(world)

    assert (response.status_code, response.json()["code"]) == (500, "version_tampered")
    assert sandbox_requests(world) == []


def test_output_checks_their_spec_refuses_stop_the_run_before_any_call(world):
    """Saved before the spec was strict (a valid JSON Schema whose $ref points nowhere): read before the
    reservation, so the call is neither made nor paid for only to end in the same 500."""
    setting_store_unchecked(world["version"], "output_checks", DANGLING_CHECKS)

    response = run(world)

    assert (response.status_code, response.json()["title"]) == (500, "Prompt version setting unreadable")
    assert sandbox_requests(world) == []
    assert not UsageRecord.objects.exists()
    assert not SpendReservation.objects.exists()


def test_a_past_run_is_readable_by_its_client_only_with_redacted_output(world, custodian):
    body = run(world).json()

    past = world["http"].get(f"/api/v1/runs/{body['id']}").json()
    other, _ = key_services.api_client_create(actor=custodian, name="o", environment="production", owner=custodian)
    _, token = key_services.api_token_issue(actor=custodian, client=other, label="t")
    stranger = HttpClient()
    stranger.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")

    assert past["id"] == body["id"]
    assert "<CUSTOMER_EMAIL_1>" in past["output"]
    assert EMAIL not in past["output"]
    assert past["usage"] == body["usage"]
    assert stranger.get(f"/api/v1/runs/{body['id']}").status_code == 404


# --- streaming --------------------------------------------------------------------------------------------


def test_a_stream_delivers_rehydrated_deltas_and_the_result(world):
    httpx2.post(f"{world['sandbox'].url}/_sandbox/config", json={"stream_chunk_chars": 3}).raise_for_status()

    response = run(world, stream=True)
    events = sse_events(response)

    assert response["Content-Type"] == "text/event-stream"
    names = [name for name, _ in events]
    assert names[0] == "run.started"
    assert names[-1] == "run.completed"
    deltas = [data["text"] for name, data in events if name == "delta"]
    # Placeholders split across 3-character chunks were held back and arrive whole, rehydrated.
    assert "".join(deltas) == events[-1][1]["output"]
    assert EMAIL in "".join(deltas)
    assert not any("<CUS" in delta or "<PHO" in delta for delta in deltas)
    assert events[-1][1]["latency_ms"]["time_to_first_token"] is not None
    assert UsageRecord.objects.get().endpoint == "stream"


def test_a_mid_stream_error_ends_with_an_error_event_and_a_ledger_row(world):
    inject(world, status="stream_error")

    events = sse_events(run(world, stream=True))

    assert events[-1][0] == "error"
    assert events[-1][1]["code"] == "upstream_overloaded"
    assert UsageRecord.objects.get().outcome == "overloaded"


def test_a_caller_leaving_mid_stream_still_settles_and_records(world):
    httpx2.post(f"{world['sandbox'].url}/_sandbox/config", json={"stream_chunk_chars": 2}).raise_for_status()
    response = run(world, stream=True)
    chunks = iter(response.streaming_content)
    next(chunks)  # run.started
    next(chunks)  # a first delta

    # The client goes away: closing the test client's wrapper closes the response, as a WSGI server
    # does, while keeping the test's database connection.
    response._iterator.close()

    assert SpendReservation.objects.get().status == "settled"
    row = UsageRecord.objects.get()
    assert (row.endpoint, row.error_class) == ("stream", "ClientDisconnected")


def test_an_idempotent_stream_is_replayed_as_events_without_a_second_call(world):
    first = sse_events(run(world, stream=True, headers={"HTTP_IDEMPOTENCY_KEY": "stream-7"}))
    replay = run(world, stream=True, headers={"HTTP_IDEMPOTENCY_KEY": "stream-7"})
    as_json = run(world, headers={"HTTP_IDEMPOTENCY_KEY": "stream-7"})  # another body: not a stream

    assert replay["Idempotent-Replayed"] == "true"
    events = sse_events(replay)
    assert [name for name, _ in events] == ["run.started", "delta", "run.completed"]
    assert events[-1] == first[-1]
    assert events[1][1]["text"] == first[-1][1]["output"]
    assert EMAIL in events[1][1]["text"]
    assert (as_json.status_code, as_json.json()["code"]) == (409, "idempotency_conflict")
    assert len(sandbox_requests(world)) == 1


def test_a_stream_that_failed_or_was_left_frees_its_idempotency_key(world):
    inject(world, status="stream_error")
    assert sse_events(run(world, stream=True, headers={"HTTP_IDEMPOTENCY_KEY": "k"}))[-1][0] == "error"
    httpx2.post(f"{world['sandbox'].url}/_sandbox/config", json={"stream_chunk_chars": 2}).raise_for_status()
    left = run(world, stream=True, headers={"HTTP_IDEMPOTENCY_KEY": "k"})
    chunks = iter(left.streaming_content)
    next(chunks)  # run.started
    next(chunks)  # a first delta
    left._iterator.close()  # the caller went away

    retried = sse_events(run(world, stream=True, headers={"HTTP_IDEMPOTENCY_KEY": "k"}))

    assert retried[-1][0] == "run.completed"
    assert len(sandbox_requests(world)) == 3


def test_a_caller_leaving_before_the_upstream_call_gives_the_hold_back(world):
    response = run(world, stream=True)
    next(iter(response.streaming_content))  # run.started

    response._iterator.close()

    assert SpendReservation.objects.get().status == "released"
    assert sandbox_requests(world) == []
    assert not UsageRecord.objects.exists()  # no upstream call, no ledger row


def test_a_client_sees_its_usage_grouped(world):
    run(world)
    run(world, metadata={"feature": "triage"})

    by_feature = world["http"].get("/api/v1/usage", {"group_by": "feature"}).json()
    by_model = world["http"].get("/api/v1/usage?group_by=model").json()
    reversed_period = world["http"].get("/api/v1/usage", {"from": "2026-02-01", "to": "2026-01-01"}).json()
    long_period = world["http"].get("/api/v1/usage", {"from": "2000-01-01", "to": "2026-12-31"}).json()
    bad = world["http"].get("/api/v1/usage", {"group_by": "weather"})

    assert [group["key"] for group in by_feature["groups"]] == ["", "triage"]
    assert by_model["groups"][0]["key"] == "claude-haiku-4-5"
    assert by_model["total"]["calls"] == 2
    assert Decimal(by_model["total"]["cost_usd"]) == sum(
        (Decimal(r.cost_usd) for r in UsageRecord.objects.all()), Decimal(0)
    )
    # Every pair of dates is answered, and the answer names the period it covers.
    assert (reversed_period["from"], reversed_period["to"], reversed_period["groups"]) == (
        "2026-02-01",
        "2026-01-01",
        [],
    )
    assert (long_period["from"], long_period["to"]) == ("2025-12-31", "2026-12-31")  # 366 days at most
    assert (bad.status_code, bad.json()["code"]) == (400, "invalid_request")


def test_sensitive_values_of_any_type_are_redacted_whole(world, author, approver):
    version = services.prompt_version_create(
        actor=author,
        prompt=world["prompt"],
        content=version_content(
            user_template="Account {{ account }} ({{ tier }}): {{ ticket }}",
            variables=[
                {"name": "account", "type": "integer", "sensitive": True},
                {"name": "tier", "type": "enum", "choices": ["gold", "basic"], "sensitive": True, "max_length": 5},
                {"name": "ticket", "type": "string"},
            ],
        ),
        change_summary="typed sensitive variables",
    )
    services.prompt_version_submit(actor=author, version=version)
    services.prompt_version_approve(actor=approver, version=version, note="ok")
    for environment in ("staging", "production"):
        services.prompt_version_release(actor=approver, version=version, environment=environment, reason="v2")

    body = run(world, {"account": 987654, "tier": "gold", "ticket": "hello"}).json()

    assert body["output"] == "Account <account>\n987654\n</account> (<tier>\ngold\n</tier>): <ticket>\nhello\n</ticket>"
    sent = json.dumps(sandbox_requests(world))
    assert "987654" not in sent
    assert "<ACCOUNT_1>" in sent


def test_a_classifier_prompt_picks_the_model(world, author, approver):
    def release(prompt, content):
        version = services.prompt_version_create(actor=author, prompt=prompt, content=content, change_summary="x")
        services.prompt_version_submit(actor=author, version=version)
        services.prompt_version_approve(actor=approver, version=version, note="ok")
        for environment in ("staging", "production"):
            services.prompt_version_release(actor=approver, version=version, environment=environment, reason="x")

    classifier = services.prompt_create(actor=author, slug="tier", name="Tier", purpose="routing", owner=author)
    release(
        classifier,
        version_content(
            user_template="{{ ticket }}",
            variables=[{"name": "ticket", "type": "string"}],
            model="claude-haiku-4-5",
            routing={},
        ),
    )
    release(
        world["prompt"],
        version_content(routing={"classifier": {"prompt": "tier", "routes": {"simple": "claude-haiku-4-5"}}}),
    )

    body = run(world, {"ticket": "Simple", "customer_email": EMAIL}).json()

    assert body["model"] == "claude-haiku-4-5"
    assert body["routed"] == {"from": "claude-sonnet-4-6", "rule": "classifier:simple"}
    assert sorted(UsageRecord.objects.values_list("endpoint", flat=True)) == ["classifier", "run"]
    assert EMAIL not in json.dumps(sandbox_requests(world))


def test_spend_is_settled_only_together_with_its_ledger_row(world, monkeypatch):
    """If the ledger row cannot be written, the settlement is rolled back with it: the spend counters
    never show spend the ledger does not (the hold stays until the reaper gives it back)."""

    def broken(record):
        raise RuntimeError("roll-up table unavailable")

    monkeypatch.setattr("usage.rollups.rollup_increments", broken)  # on either path (usage.settlement.sql_path)
    world["http"].raise_request_exception = False

    assert run(world).status_code == 500

    assert not UsageRecord.objects.exists()
    assert SpendReservation.objects.get().status == "held"
    assert all(counter.spent_usd == 0 for counter in SpendCounter.objects.all())
