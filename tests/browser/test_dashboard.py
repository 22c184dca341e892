from __future__ import annotations

from decimal import Decimal

import pytest

from tests.browser.signin import sign_in
from usage.selectors import price_for
from usage.settlement import call_settle

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_approver_opens_the_dashboard_and_sees_the_months_spend(live_server, page, approver):
    for prompt, cost in (("support-summary", "1.25"), ("triage", "0.75")):
        call_settle(record={
            "request_id": "r", "environment": "production", "prompt_slug": prompt, "endpoint": "run", "outcome": "ok",
            "requested_model": "claude-haiku-4-5", "model": "claude-haiku-4-5", "price": price_for("claude-haiku-4-5"),
            "cost_usd": Decimal(cost), "latency_total_ms": 150,
        })  # fmt: skip
    sign_in(page, live_server.url, approver)

    page.goto(f"{live_server.url}/admin/usage/usagerecord/")
    page.click("text=Dashboard")
    page.wait_for_selector("#headline")

    assert "$2.00" in page.inner_text("#headline")
    chart = page.locator("#cost-by-prompt_slug")
    assert chart.locator("canvas").is_visible()
    assert "support-summary" in chart.locator("table").text_content()
    assert page.locator("#latency td", has_text="200").count() >= 1
