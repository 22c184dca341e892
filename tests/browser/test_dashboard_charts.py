"""The usage dashboard's charts in Chromium: drawn by Chart.js within the Content-Security-Policy, each with
the figures of the table under it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tests.browser.screenshots import save
from tests.browser.signin import sign_in
from usage.choices import CapScope, Period
from usage.dashboard import figure
from usage.selectors import price_for
from usage.services import Cap, spend_settle
from usage.settlement import call_settle, spend_reserve

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Per chart: its unit, the numbers Chart.js holds (dataset by dataset) and the table's cells (row by row).
CHARTS = """
() => [...document.querySelectorAll("[data-chart]")].map((box) => {
  const chart = Chart.getChart(box.querySelector("canvas"));
  const section = box.closest("section");
  return {
    id: section.id,
    unit: JSON.parse(document.getElementById(box.dataset.chart).textContent).unit,
    labels: chart.data.labels,
    datasets: chart.data.datasets.map((dataset) => dataset.data),
    rows: [...section.querySelectorAll("tbody tr")].map((row) => [...row.children].map((cell) => cell.textContent)),
  };
})
"""


def seed(today: datetime) -> None:
    """Two weeks of calls for three features on two models, some failing, and a monthly cap."""
    for days_ago in range(14):
        at = today - timedelta(days=days_ago)
        for index, (feature, model) in enumerate(
            (("search", "claude-haiku-4-5"), ("support", "claude-sonnet-4-6"), ("triage", "claude-haiku-4-5"))
        ):
            call_settle(record={
                "request_id": f"r-{days_ago}-{index}", "environment": "production", "prompt_slug": feature,
                "endpoint": "stream", "requested_model": model, "model": model, "price": price_for(model),
                "outcome": "overloaded" if (days_ago + index) % 5 == 0 else "ok", "feature": feature,
                "cost_usd": Decimal(index + 1) * Decimal("0.35") + Decimal(days_ago % 4) / 10,
                "latency_total_ms": 180 + 90 * index + 40 * days_ago, "time_to_first_token_ms": 60 + 30 * index,
                "created_at": at,
            })  # fmt: skip
    reservation = spend_reserve(
        request_id="cap",
        caps=[Cap(CapScope.PROVIDER_KEY, 1, Period.MONTH, Decimal(40), "Production key")],
        amount=Decimal(5),
        ledger={"environment": "production"},
    )
    spend_settle(reservation=reservation, actual=Decimal("3.10"))


def test_every_chart_is_drawn_with_the_figures_of_its_table(live_server, page, approver):
    today = datetime.now(tz=UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    seed(today)
    sign_in(page, live_server.url, approver)
    first_day = (today - timedelta(days=13)).date().isoformat()

    page.goto(f"{live_server.url}/admin/usage/usagerecord/dashboard/?first_day={first_day}&stack_by=model")
    page.wait_for_function("() => typeof Chart !== 'undefined' && document.querySelectorAll('canvas').length > 0")
    charts = page.evaluate(CHARTS)

    ids = [chart["id"] for chart in charts]
    assert ids[:3] == ["cost-per-day", "cost-by-feature", "cost-by-user_tier"]
    assert {"latency-per-day", "errors", "burn-down-1"} <= set(ids)
    assert len(charts) == page.locator("canvas").count() == 10  # 3 per day, 6 breakdowns, 1 cap
    for chart in charts:
        assert any(value is not None for data in chart["datasets"] for value in data), chart["id"]
        assert [row[0] for row in chart["rows"]] == chart["labels"], chart["id"]
        table = [[figure(None if value is None else Decimal(str(value)), chart["unit"]) for value in column]
                 for column in chart["datasets"]]  # fmt: skip
        assert [row[1:] for row in chart["rows"]] == [list(cells) for cells in zip(*table, strict=True)], chart["id"]

    cost = charts[0]
    assert len(cost["labels"]) == 14
    assert len(cost["datasets"]) == 2  # stacked by model
    assert page.is_visible("#cost-per-day canvas")
    assert page.locator("#cost-per-day canvas").bounding_box()["height"] > 100
    save(page, "dashboard")
