"""The usage dashboard: what staff see for a period, and who may see it."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.utils import timezone

from usage.choices import CapScope, Period
from usage.selectors import price_for
from usage.services import Cap, spend_settle
from usage.settlement import call_settle, spend_reserve

pytestmark = pytest.mark.django_db


def record(**fields):
    base = {"request_id": "r", "environment": "production", "prompt_slug": "summary", "endpoint": "run",
            "requested_model": "claude-sonnet-4-6", "model": "claude-haiku-4-5", "outcome": "ok",
            "price": price_for("claude-haiku-4-5"), "created_at": timezone.now()}  # fmt: skip
    call_settle(record={**base, **fields})


@pytest.fixture
def ledger():
    record(cost_usd=Decimal("1.50"), default_model_cost_usd=Decimal("4.50"), latency_total_ms=180,
           input_tokens=1000, cache_read_tokens=3000, feature="search", user_tier="pro", prompt_version=2,
           checks={"passed": True, "failed": []})  # fmt: skip
    record(prompt_version=2, outcome="ok", checks={"passed": False, "failed": ["max_length"]}, latency_total_ms=40)
    record(cost_usd=Decimal("0.50"), default_model_cost_usd=Decimal("0.50"), latency_total_ms=900,
           time_to_first_token_ms=120, endpoint="stream", prompt_slug="<script>alert(1)</script>")  # fmt: skip
    record(outcome="overloaded", cost_usd=Decimal(0), latency_total_ms=40)
    record(environment="staging", cost_usd=Decimal("7.00"), latency_total_ms=100)
    reservation = spend_reserve(
        request_id="r",
        caps=[Cap(CapScope.PROVIDER_KEY, 1, Period.MONTH, Decimal(10), "prod key")],
        amount=Decimal(3),
        ledger={"environment": "production"},
    )
    spend_settle(reservation=reservation, actual=Decimal("2.00"))


@pytest.mark.parametrize(
    ("persona", "status"),
    [("approver", 200), ("custodian", 200), ("auditor", 200), ("author", 403), ("outsider", 403)],
)
def test_staff_who_read_the_ledger_see_the_dashboard_and_others_do_not(client, request, persona, status):
    client.force_login(request.getfixturevalue(persona))

    assert client.get("/admin/usage/usagerecord/dashboard/").status_code == status


def test_the_dashboard_shows_cost_savings_latency_errors_and_budget_burn(client, approver, ledger):
    client.force_login(approver)

    response = client.get("/admin/usage/usagerecord/dashboard/", {"environment": "production"})

    context = response.context
    assert context["headline"]["month_to_date"] == Decimal("2.00")  # production only
    assert context["tokens"]["routing_savings"] == Decimal("3.00")
    assert context["tokens"]["cache_hit_ratio"] == pytest.approx(0.75)
    assert context["tokens"]["cache_savings"] > 0
    summary = next(row for row in context["latency"] if row["prompt"] == "summary")
    assert (summary["calls"], summary["p50"], summary["p95"]) == (3, 50, 200)
    today = timezone.now().date().isoformat()
    errors = context["errors_chart"]
    overloaded = next(dataset for dataset in errors["datasets"] if dataset["label"] == "Overloaded")
    assert overloaded["data"][errors["labels"].index(today)] == "25.0"  # 1 call in 4
    assert context["quality"] == [{"prompt": "summary", "version": 2, "checked": 2, "pass_rate": 0.5}]
    (burn,) = context["budget"]
    assert (burn["label"], burn["spent"], burn["limit"], burn["percent"]) == ("prod key", Decimal(2), 10, 20.0)
    html = response.content.decode()
    # cost, latency and errors per day, six breakdowns, the cap's burn-down: each drawn from its JSON
    assert html.count("<canvas") == html.count('type="application/json"') == 10
    assert "search" in html
    assert "<script>alert(1)</script>" not in html  # labels are escaped in the JSON and in the tables
    assert "\\u003Cscript\\u003Ealert(1)" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_all_environments_and_an_empty_period(client, approver, ledger):
    client.force_login(approver)
    everything = client.get("/admin/usage/usagerecord/dashboard/").context
    long_ago = client.get("/admin/usage/usagerecord/dashboard/", {"first_day": "2020-01-01", "last_day": "2020-01-31"})

    assert everything["headline"]["month_to_date"] == Decimal("9.00")
    assert long_ago.status_code == 200
    assert long_ago.context["latency"] == []
    assert "No data in this period." in long_ago.content.decode()
