"""Cost estimates over the API, the admin calculator, price-book edits, alerts triage, the ledger page."""

from __future__ import annotations

from decimal import Decimal

import pytest
from rest_framework.test import APIClient as HttpClient

from audit.models import AuditEvent
from keys import services as key_services
from usage.models import BudgetAlert, Price
from usage.settlement import call_settle

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(custodian):
    client, _ = key_services.api_client_create(
        actor=custodian, name="svc", environment="development", owner=custodian, all_prompts=True
    )
    _, token = key_services.api_token_issue(actor=custodian, client=client, label="t")
    http = HttpClient()
    http.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return http


def test_the_cost_estimate_endpoint_prices_every_category(api):
    response = api.post(
        "/api/v1/cost/estimate",
        {
            "model": "claude-sonnet-4-5",
            "input_tokens": 100,
            "output_tokens": 300,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 9900,
        },
        format="json",
    )

    assert response.status_code == 200
    body = response.json()
    assert (body["cost_usd"], body["cost_per_1000_usd"]) == ("0.00777", "7.77")
    assert body["price"]["input"] == "3.0000"
    assert body["price"]["model"] == "claude-sonnet-4-5"


def test_a_batch_estimate_is_half_price(api):
    body = api.post(
        "/api/v1/cost/estimate",
        {"model": "claude-haiku-4-5", "input_tokens": 1_000_000, "output_tokens": 0, "batch": True},
        format="json",
    ).json()

    assert body["cost_usd"] == "0.5"


@pytest.mark.parametrize(
    ("body", "code", "status"),
    [
        ({"model": "claude-nope", "input_tokens": 1, "output_tokens": 1}, "model_not_priced", 400),
        ({"model": "claude-haiku-4-5", "input_tokens": -1, "output_tokens": 1}, "invalid_request", 400),
        ({"model": "claude-haiku-4-5"}, "invalid_request", 400),
    ],
)
def test_bad_estimates_get_a_clear_error(api, body, code, status):
    response = api.post("/api/v1/cost/estimate", body, format="json")

    assert (response.status_code, response.json()["code"]) == (status, code)


def test_the_calculator_shows_a_smaller_model_is_cheaper(client, approver):
    client.force_login(approver)

    response = client.get(
        "/admin/usage/price/calculator/",
        {
            "models": ["claude-opus-4-1-20250805", "claude-haiku-4-5"],
            "input_tokens": 2000,
            "cached_tokens": 1500,
            "output_tokens": 300,
        },
    )

    html = response.content.decode()
    assert response.status_code == 200
    # Opus 4.1: (2,000 × 15 + 300 × 75) / 1e6 = $0.0525; Haiku 4.5: (2,000 + 300 × 5) / 1e6 = $0.0035: 15×
    assert "$0.052500" in html
    assert "$0.003500" in html
    assert "15.0×" in html


def test_price_edits_need_a_reason_and_are_audited(client, custodian):
    client.force_login(custodian)
    price = Price.objects.filter(model="claude-haiku-4-5").first()
    form = {
        "model": "claude-haiku-4-5",
        "effective_from_0": "2030-01-01",
        "effective_from_1": "00:00:00",
        "input": "0.9",
        "cache_write_5m": "1.125",
        "cache_write_1h": "1.8",
        "cache_read": "0.09",
        "output": "4.5",
        "batch_multiplier": "0.5",
        "long_context_threshold": "",
        "long_context_input_multiplier": "1",
        "long_context_output_multiplier": "1",
        "min_cache_tokens": "4096",
        "note": "announced cut",
    }

    assert client.post("/admin/usage/price/add/", form).status_code == 200  # no reason: the form again
    assert client.post("/admin/usage/price/add/", {**form, "reason": "Price cut from 2030"}).status_code == 302

    assert Price.objects.filter(model="claude-haiku-4-5").count() == 2
    event = AuditEvent.objects.get(action="price.create")
    assert event.reason == "Price cut from 2030"
    assert Price.objects.filter(model="claude-haiku-4-5").order_by("effective_from").first() == price
    assert client.post(f"/admin/usage/price/{price.pk}/delete/", {"post": "yes"}).status_code == 403


def test_only_custodians_edit_the_price_book(client, approver):
    client.force_login(approver)

    assert client.get("/admin/usage/price/").status_code == 200
    assert client.get("/admin/usage/price/add/").status_code == 403


def test_an_alert_is_acknowledged_with_a_triage_note(client, approver):
    alert = BudgetAlert.objects.create(
        scope="provider_key",
        scope_id=1,
        label="prod",
        period="month",
        period_start="2026-11-01",
        threshold_percent=80,
        spent_usd=Decimal(8),
        limit_usd=Decimal(10),
    )
    client.force_login(approver)

    client.post(f"/admin/usage/budgetalert/{alert.pk}/change/", {"triage_note": "Expected: launch week"})

    alert.refresh_from_db()
    assert (alert.acknowledged_by, alert.triage_note) == (approver, "Expected: launch week")
    assert AuditEvent.objects.filter(action="budget_alert.acknowledge").exists()


def test_the_ledger_is_read_only_in_the_admin(client, auditor, superuser):
    row = call_settle(
        record={"request_id": "req-1", "environment": "production", "endpoint": "run", "requested_model": "m",
                "model": "m", "outcome": "ok"}
    ).record  # fmt: skip
    client.force_login(superuser)

    assert client.get("/admin/usage/usagerecord/").status_code == 200
    assert client.get("/admin/usage/usagerecord/add/").status_code == 403
    assert client.post(f"/admin/usage/usagerecord/{row.pk}/delete/", {"post": "yes"}).status_code == 403
    client.force_login(auditor)
    assert "req-1" in client.get("/admin/usage/usagerecord/").content.decode()
