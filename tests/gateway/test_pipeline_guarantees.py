"""The run pipeline's promises under attack: every upstream call is recorded and settled whatever fails after
the reservation, a cap holds the true worst case, personal data and end-user ids never leave in clear, and a
provider key goes nowhere but an allowed upstream. Each test names the attack it replays."""

from __future__ import annotations

import io
import json
import logging
from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.utils import timezone

from gateway.models import Job, Run
from gateway.pipeline import end_user_pseudonym, run_prepare
from keys import services as key_services
from keys.models import ProviderKey
from prompts import services
from tests.factories import version_content
from tests.gateway.upstream import EMAIL, TICKET, close_response, sandbox_requests
from usage.choices import CapScope, Endpoint, Period
from usage.models import BudgetAlert, SpendCounter, SpendReservation, UsageRecord, UsageRollup
from usage.services import Cap, spend_settle
from usage.settlement import spend_reservations_reap, spend_reserve

pytestmark = pytest.mark.django_db


def run(world, variables=None, **extra):
    body = {"variables": variables or {"ticket": TICKET, "customer_email": EMAIL}, **extra}
    # As a client sends it: escaped JSON, so that unpaired surrogates travel as `\ud800`.
    return world["http"].post("/api/v1/prompts/support-summary/run", json.dumps(body), content_type="application/json")


def release(author, approver, prompt, content):
    version = services.prompt_version_create(actor=author, prompt=prompt, content=content, change_summary="x")
    services.prompt_version_submit(actor=author, version=version)
    services.prompt_version_approve(actor=approver, version=version, note="ok")
    for environment in ("staging", "production"):
        services.prompt_version_release(actor=approver, version=version, environment=environment, reason="x")
    return version


def upstream_calls(world) -> list[dict]:
    return [r for r in sandbox_requests(world) if r["path"].startswith("/v1/messages")]


def no_reservation_held() -> bool:
    return not SpendReservation.objects.filter(status="held").exists()


# --- finding 1: an alert crossing a threshold cannot lose the ledger row or the settlement ---------------


def key_spent(world, amount: str) -> None:
    key = world["key"]
    cap = Cap(CapScope.PROVIDER_KEY, key.pk, Period.MONTH, key.monthly_cap_usd, key.label, key.alert_threshold_percent)
    spend_settle(
        reservation=spend_reserve(request_id="earlier", caps=[cap], amount=Decimal(amount)), actual=Decimal(amount)
    )


def test_a_run_that_crosses_a_budget_alert_threshold_is_answered_recorded_and_alerted(
    world, custodian, django_capture_on_commit_callbacks
):
    world["key"] = key_services.provider_key_update(
        actor=custodian, key=world["key"], reason="tight cap", monthly_cap_usd=Decimal("0.05")
    )
    key_spent(world, "0.035")  # 70 %: the run takes it past 80 %

    with django_capture_on_commit_callbacks(execute=True):
        response = run(world, {"ticket": "x" * 2000, "customer_email": EMAIL})

    assert response.status_code == 200, response.content
    row = UsageRecord.objects.get(request_id=response["X-Request-ID"])
    assert row.outcome == "ok"
    assert no_reservation_held()
    assert BudgetAlert.objects.filter(threshold_percent=80).exists()
    assert len(upstream_calls(world)) == 1


def test_a_failing_alert_check_never_undoes_the_ledger_row_or_the_settlement(
    world, monkeypatch, django_capture_on_commit_callbacks, caplog
):
    def broken(counter, hold):
        raise RuntimeError("alerting is down")

    monkeypatch.setattr("usage.services._alerts_check", broken)

    with django_capture_on_commit_callbacks(execute=True):
        response = run(world)

    assert response.status_code == 200
    assert UsageRecord.objects.get().outcome == "ok"
    assert SpendReservation.objects.get().status == "settled"
    assert SpendCounter.objects.filter(spent_usd__gt=0).exists()
    assert "Budget alert check failed" in caplog.text


# --- finding 2: the classifier sees only redacted values --------------------------------------------------


def test_a_variable_sensitive_in_the_routed_prompt_reaches_the_classifier_redacted(world, author, approver):
    secret_ticket = "Order 7731 for the Zylberstein account"
    classifier = services.prompt_create(actor=author, slug="tier", name="Tier", purpose="routing", owner=author)
    release(author, approver, classifier, version_content(
        user_template="{{ ticket }}", variables=[{"name": "ticket", "type": "string"}],  # not sensitive here
        model="claude-haiku-4-5", routing={},
    ))  # fmt: skip
    release(author, approver, world["prompt"], version_content(
        variables=[
            {"name": "ticket", "type": "string", "sensitive": True},
            {"name": "customer_email", "type": "string", "sensitive": True},
        ],
        routing={"classifier": {"prompt": "tier", "routes": {"simple": "claude-haiku-4-5"}}},
    ))  # fmt: skip

    response = run(world, {"ticket": secret_ticket, "customer_email": EMAIL})

    assert response.status_code == 200
    assert secret_ticket in response.json()["output"]  # rehydrated for the caller
    sent = json.dumps(upstream_calls(world))
    assert len(upstream_calls(world)) == 2  # the classifier, then the main call
    assert "Zylberstein" not in sent
    assert EMAIL not in sent


def test_a_variable_sensitive_only_in_the_classifier_is_redacted_for_every_call(world, author, approver):
    classifier = services.prompt_create(actor=author, slug="tier", name="Tier", purpose="routing", owner=author)
    release(author, approver, classifier, version_content(
        user_template="{{ ticket }}", variables=[{"name": "ticket", "type": "string", "sensitive": True}],
        model="claude-haiku-4-5", routing={},
    ))  # fmt: skip
    release(author, approver, world["prompt"], version_content(
        routing={"classifier": {"prompt": "tier", "routes": {"simple": "claude-haiku-4-5"}}},
    ))  # fmt: skip

    assert run(world, {"ticket": "Zylberstein asks for a refund", "customer_email": EMAIL}).status_code == 200

    assert "Zylberstein" not in json.dumps(upstream_calls(world))


# --- finding 3: end-user ids are pseudonymised before they leave or are stored; no body in any log ----------


def test_an_end_user_id_leaves_and_is_stored_only_as_its_pseudonym(world):
    metadata = {"end_user": EMAIL, "feature": f"ticket of {EMAIL}", "user_tier": "pro"}

    first = run(world, metadata=metadata)
    second = run(world, metadata=metadata)

    assert first.status_code == second.status_code == 200
    pseudonym = end_user_pseudonym(EMAIL)
    assert pseudonym.startswith("eu_")
    assert EMAIL not in pseudonym
    assert [call["body"]["metadata"]["user_id"] for call in upstream_calls(world)] == [pseudonym, pseudonym]
    assert set(UsageRecord.objects.values_list("end_user", flat=True)) == {pseudonym}  # stable: reports work
    assert end_user_pseudonym("someone-else") != pseudonym
    stored = json.dumps([*UsageRecord.objects.values(), *UsageRollup.objects.values()], default=str)
    assert EMAIL not in stored
    assert UsageRecord.objects.first().feature == "ticket of <EMAIL_1>"


def test_a_queued_job_stores_only_the_pseudonym(world, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = world["http"].post(
            "/api/v1/prompts/support-summary/jobs",
            {"variables": {"ticket": TICKET, "customer_email": EMAIL}, "metadata": {"end_user": "user-42"}},
            format="json",
        )

    assert response.status_code == 202
    assert Job.objects.get().metadata == {"end_user": end_user_pseudonym("user-42")}
    assert UsageRecord.objects.get().end_user == end_user_pseudonym("user-42")


def test_no_log_level_prints_a_request_body(world, settings):
    """Every logger at DEBUG, the SDK's included: the console handler (as configured) prints no body."""
    handler = next(h for h in logging.getLogger().handlers if getattr(h, "filters", None))
    captured = io.StringIO()
    loggers = [logging.getLogger(name) for name in ("", "anthropic", "httpx", "httpx2", "httpcore", "django.db")]
    levels = [logger.level for logger in loggers]
    stream = handler.setStream(captured)
    try:
        for logger in loggers:
            logger.setLevel(logging.DEBUG)
        settings.DEBUG = True  # Django's SQL log too
        response = run(world, {"ticket": "Call Zylberstein on +1 415 555 2671", "customer_email": EMAIL})
    finally:
        handler.setStream(stream)
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)

    assert response.status_code == 200
    output = captured.getvalue()
    assert output  # something was logged at DEBUG: the check can fail
    assert EMAIL not in output
    assert "<CUSTOMER_EMAIL_1>" not in output  # not even the redacted body
    assert "Zylberstein" not in output


# --- finding 5: whatever happens after a reservation, it is settled or released ---------------------------


@pytest.mark.parametrize("value", ["\ud800", "before \udfff after", "nul\x00byte"])
def test_text_that_cannot_be_sent_or_stored_is_refused_before_any_upstream_call(world, value):
    response = run(world, {"ticket": value, "customer_email": EMAIL})

    assert response.status_code == 400
    assert response.json()["code"] in ("invalid_request", "invalid_variables")
    assert upstream_calls(world) == []
    assert not SpendReservation.objects.exists()


def test_a_job_with_a_nul_byte_is_refused_before_it_is_queued(world):
    response = world["http"].post(
        "/api/v1/prompts/support-summary/jobs",
        {"variables": {"ticket": "a\x00b", "customer_email": EMAIL}},
        format="json",
    )

    assert response.status_code == 400
    assert not Job.objects.exists()


def test_a_fault_of_tollgate_after_the_call_still_records_and_settles_it(world, monkeypatch):
    def broken(checks, output):
        raise RuntimeError("a bug in the output checks")

    monkeypatch.setattr("gateway.pipeline.output_checks_run", broken)
    world["http"].raise_request_exception = False

    response = run(world)

    assert response.status_code == 500
    assert len(upstream_calls(world)) == 1
    row = UsageRecord.objects.get()
    assert (row.outcome, row.error_class) == ("internal_error", "RuntimeError")
    assert row.output_tokens > 0
    assert row.cost_usd > 0
    assert SpendReservation.objects.get().status == "settled"


def test_a_fault_inside_the_sdk_before_the_request_leaves_releases_the_hold(world, monkeypatch):
    def broken(prepared):
        raise UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed")

    monkeypatch.setattr("gateway.pipeline._call_kwargs", broken)
    world["http"].raise_request_exception = False

    assert run(world).status_code == 500

    assert upstream_calls(world) == []
    assert UsageRecord.objects.get().outcome == "internal_error"
    assert SpendReservation.objects.get().status == "released"


def test_a_fault_mid_stream_ends_with_an_error_event_and_the_call_recorded(world, monkeypatch):
    def broken(checks, output):
        raise RuntimeError("a bug in the output checks")

    monkeypatch.setattr("gateway.pipeline.output_checks_run", broken)

    response = run(world, stream=True)
    text = b"".join(response.streaming_content).decode()

    assert "event: error" in text
    assert "internal_error" in text
    assert UsageRecord.objects.get().outcome == "internal_error"
    assert SpendReservation.objects.get().status == "settled"


def test_a_stream_whose_body_is_never_read_gives_its_hold_back(world):
    response = run(world, stream=True)
    assert SpendReservation.objects.get().status == "held"

    close_response(response)  # the caller went away before the first byte

    assert SpendReservation.objects.get().status == "released"
    assert upstream_calls(world) == []
    assert not UsageRecord.objects.exists()


def test_a_reservation_whose_holder_died_is_closed_with_a_ledger_row(world):
    prepared = run_prepare(
        client=world["client"],
        slug="support-summary",
        variables={"ticket": TICKET, "customer_email": EMAIL},
        metadata={"feature": "f"},
        endpoint=Endpoint.RUN,
        request_id="crashed-request",
    )  # … and the process dies before settling

    with time_machine.travel(timezone.now() + timedelta(minutes=16)):
        assert spend_reservations_reap() == 1

    row = UsageRecord.objects.get()
    assert (row.request_id, row.outcome, row.error_class, row.feature) == (
        "crashed-request", "server_error", "HolderLost", "f",
    )  # fmt: skip
    reservation = SpendReservation.objects.get(pk=prepared.reservation.pk)
    # Its tokens are unknown: the worst case it held is what the cap and the ledger carry.
    assert reservation.status == "settled"
    assert row.cost_usd == reservation.settled_usd == reservation.amount_usd
    counter = SpendCounter.objects.get(scope="provider_key", period="month")
    assert (counter.reserved_usd, counter.spent_usd) == (0, reservation.amount_usd)


# --- finding 6: the reservation is a true worst case ------------------------------------------------------


@pytest.mark.parametrize("text", ["a" * 3000, "日本語のチケット" * 400, "🙂" * 800])
def test_a_run_never_costs_more_than_it_reserved(world, author, approver, text):
    release(author, approver, world["prompt"], version_content(
        model="claude-haiku-4-5", routing={}, cache_ttl="1h", max_tokens=50,
        variables=[{"name": "ticket", "type": "string"}, {"name": "customer_email", "type": "string"}],
    ))  # fmt: skip

    assert run(world, {"ticket": text, "customer_email": "x"}).status_code == 200

    reservation = SpendReservation.objects.get()
    assert reservation.settled_usd > 0
    assert reservation.settled_usd <= reservation.amount_usd


def test_cold_cache_runs_never_take_a_cap_past_its_limit(world, author, approver, custodian):
    release(author, approver, world["prompt"], version_content(
        model="claude-haiku-4-5", routing={}, cache_ttl="1h", max_tokens=100,
        variables=[{"name": "ticket", "type": "string"}, {"name": "customer_email", "type": "string"}],
        system_prompt="You summarise support tickets. " * 200,  # long enough to be cached
    ))  # fmt: skip
    key_services.provider_key_update(actor=custodian, key=world["key"], reason="cap", monthly_cap_usd=Decimal("0.05"))
    counter = None
    for index in range(40):
        world["sandbox"].call(lambda state: state.reset())  # a cold cache every time
        response = run(world, {"ticket": f"ticket {index} " + "é" * 300, "customer_email": "x"})
        counter = SpendCounter.objects.get(scope="provider_key")
        assert counter.spent_usd + counter.reserved_usd <= Decimal("0.05")
        if response.status_code == 402:
            break
    assert response.status_code == 402  # the cap stopped the runs before it was exceeded
    assert counter.spent_usd <= Decimal("0.05")


# --- finding 9: a provider key goes only to an allowed upstream ------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://attacker.example.com",
        "https://api.anthropic.com.attacker.example",
        "https://api.anthropic.com@attacker.example/",
        "http://api.anthropic.com",
        "https://api.anthropic.com:8443",
        "https://api.anthropic.com/v1/../../steal",
    ],
)
def test_a_custodian_cannot_point_a_key_at_another_host(world, custodian, url):
    with pytest.raises(ValidationError):
        key_services.provider_key_update(actor=custodian, key=world["key"], reason="move", base_url=url)


def test_a_key_edited_in_the_database_to_another_host_is_never_sent(world):
    ProviderKey.objects.filter(pk=world["key"].pk).update(base_url="https://attacker.example.com")

    response = run(world)

    assert response.status_code == 502
    assert response.json()["code"] == "upstream_not_allowed"
    assert not SpendReservation.objects.exists()
    assert not Run.objects.exists()
