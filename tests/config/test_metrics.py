"""GET /metrics: the documented series in Prometheus text format, read from the database, behind a token."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
import yaml

from keys import services as key_services
from tests.conftest import ROOT
from usage.choices import CapScope, Period
from usage.selectors import price_for
from usage.services import Cap, spend_settle
from usage.settlement import call_settle, spend_reserve

pytestmark = pytest.mark.django_db


def record(**fields):
    base = {"request_id": "r", "environment": "production", "prompt_slug": "summary", "endpoint": "run",
            "requested_model": "claude-haiku-4-5", "model": "claude-haiku-4-5", "outcome": "ok",
            "price": price_for("claude-haiku-4-5")}  # fmt: skip
    call_settle(record={**base, **fields})


def samples(text: str) -> dict[str, float]:
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line[:1] != "#"}


@pytest.fixture
def ledger():
    record(input_tokens=100, output_tokens=20, cost_usd=Decimal("0.0002"), latency_total_ms=40)
    record(input_tokens=50, output_tokens=10, cost_usd=Decimal("0.0001"), latency_total_ms=180,
           time_to_first_token_ms=90, endpoint="stream")  # fmt: skip
    record(outcome="overloaded", latency_total_ms=2500)


def test_the_documented_series_are_exposed(client, ledger, settings):
    settings.TOLLGATE_METRICS_TOKEN = "metrics-token-for-tests"

    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer metrics-token-for-tests")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    text = response.content.decode()
    for family, kind in [
        ("tollgate_runs_total", "counter"),
        ("tollgate_tokens_total", "counter"),
        ("tollgate_cost_usd_total", "counter"),
        ("tollgate_upstream_errors_total", "counter"),
        ("tollgate_latency_ms", "histogram"),
        ("tollgate_time_to_first_token_ms", "histogram"),
        ("tollgate_spend_usd", "gauge"),
        ("tollgate_spend_cap_usd", "gauge"),
        ("tollgate_queue_jobs", "gauge"),
        ("tollgate_queue_oldest_seconds", "gauge"),
    ]:
        assert f"# TYPE {family} {kind}" in text
    values = samples(text)
    labels = 'environment="production",prompt="summary",model="claude-haiku-4-5"'
    assert values[f'tollgate_runs_total{{{labels},endpoint="run",outcome="ok"}}'] == 1
    assert values[f'tollgate_runs_total{{{labels},endpoint="run",outcome="overloaded"}}'] == 1
    assert values[f'tollgate_tokens_total{{{labels},kind="input"}}'] == 150
    assert values[f"tollgate_cost_usd_total{{{labels}}}"] == pytest.approx(0.0003)
    assert values['tollgate_upstream_errors_total{environment="production",class="overloaded"}'] == 1
    # Histogram buckets are cumulative and end at +Inf = _count.
    assert values[f'tollgate_latency_ms_bucket{{{labels},le="50"}}'] == 1
    assert values[f'tollgate_latency_ms_bucket{{{labels},le="200"}}'] == 2
    assert values[f'tollgate_latency_ms_bucket{{{labels},le="+Inf"}}'] == 3
    assert values[f"tollgate_latency_ms_count{{{labels}}}"] == 3
    assert values[f"tollgate_latency_ms_sum{{{labels}}}"] == 40 + 180 + 2500
    assert values[f"tollgate_time_to_first_token_ms_count{{{labels}}}"] == 1
    assert values['tollgate_queue_jobs{environment="production",status="queued"}'] == 0


def test_a_wrong_or_missing_token_gets_nothing(client, ledger, settings):
    settings.TOLLGATE_METRICS_TOKEN = "metrics-token-for-tests"

    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 404


def test_without_a_token_only_loopback_is_answered(client, ledger, settings):
    settings.TOLLGATE_METRICS_TOKEN = ""

    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="203.0.113.7").status_code == 404


def test_behind_a_proxy_on_the_same_host_loopback_means_the_client_not_the_proxy(client, ledger, settings):
    settings.TOLLGATE_METRICS_TOKEN = ""
    settings.TOLLGATE_TRUSTED_PROXIES = 1
    via_proxy = {"REMOTE_ADDR": "127.0.0.1"}  # the proxy's own address

    relayed = client.get("/metrics", HTTP_X_FORWARDED_FOR="203.0.113.7", **via_proxy)
    forged = client.get("/metrics", HTTP_X_FORWARDED_FOR="127.0.0.1, 203.0.113.7", **via_proxy)
    garbage = client.get("/metrics", HTTP_X_FORWARDED_FOR="localhost", **via_proxy)
    local_scraper = client.get("/metrics", HTTP_X_FORWARDED_FOR="::1", **via_proxy)
    direct = client.get("/metrics", **via_proxy)  # Prometheus on the host, not through the proxy

    assert relayed.status_code == 404
    assert forged.status_code == 404  # the proxy appended the real client after the forged entry
    assert garbage.status_code == 404
    assert local_scraper.status_code == 200
    assert direct.status_code == 200


def test_label_values_are_escaped(client, settings):
    settings.TOLLGATE_METRICS_TOKEN = ""
    record(prompt_slug='odd"slug\\x')

    text = client.get("/metrics", REMOTE_ADDR="127.0.0.1").content.decode()

    assert re.search(r'prompt="odd\\"slug\\\\x"', text)


def test_spend_against_each_cap_is_exposed(client, settings, custodian):
    settings.TOLLGATE_METRICS_TOKEN = ""
    key = key_services.provider_key_create(actor=custodian, environment="production", label="prod",
                                           secret="sk-ant-api03-metrics-0123456789abcdef", owner=custodian,
                                           monthly_cap_usd=Decimal(40), daily_cap_usd=Decimal(5))  # fmt: skip
    caps = [Cap(CapScope.PROVIDER_KEY, key.pk, Period.MONTH, Decimal(40), "prod"),
            Cap(CapScope.PROVIDER_KEY, key.pk, Period.DAY, Decimal(5), "prod")]  # fmt: skip
    spend_settle(reservation=spend_reserve(request_id="r", caps=caps, amount=Decimal(2)), actual=Decimal("1.5"))
    spend_reserve(request_id="held", caps=caps, amount=Decimal(1))

    values = samples(client.get("/metrics", REMOTE_ADDR="127.0.0.1").content.decode())

    for period, cap in (("month", 40), ("day", 5)):
        labels = f'scope="provider_key",name="prod",period="{period}"'
        assert values[f"tollgate_spend_usd{{{labels}}}"] == 1.5
        assert values[f"tollgate_spend_reserved_usd{{{labels}}}"] == 1
        assert values[f"tollgate_spend_cap_usd{{{labels}}}"] == cap


def test_the_shipped_alert_rules_name_only_series_that_metrics_serves(client, ledger, settings, custodian):
    """deploy/prometheus/tollgate-rules.yml: each rule's expression names families /metrics declares, with
    the labels it groups or reports by (a renamed series or label would silence an alert)."""
    settings.TOLLGATE_METRICS_TOKEN = "metrics-token-for-tests"
    key_services.provider_key_create(actor=custodian, environment="production", label="prod",
                                     secret="sk-ant-api03-metrics-0123456789abcdef", owner=custodian,
                                     monthly_cap_usd=Decimal(40))  # fmt: skip
    text = client.get("/metrics", HTTP_AUTHORIZATION="Bearer metrics-token-for-tests").content.decode()
    declared = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.MULTILINE))
    labels_of: dict[str, set[str]] = {}
    for name, labels in re.findall(r"^(tollgate_\w+)\{([^}]*)\}", text, re.MULTILINE):
        labels_of.setdefault(name, set()).update(re.findall(r'(\w+)="', labels))
    rules = yaml.safe_load((ROOT / "deploy" / "prometheus" / "tollgate-rules.yml").read_text())

    checked = set()
    for rule in rules["groups"][0]["rules"]:
        grouped = re.findall(r"by \(([^)]*)\)", rule["expr"])
        used = {label.strip() for group in grouped for label in group.split(",")} - {"le"}
        used |= set(re.findall(r"\$labels\.(\w+)", rule["annotations"]["summary"]))
        for series in set(re.findall(r"\btollgate_\w+", rule["expr"])):
            assert re.sub(r"_(bucket|sum|count)$", "", series) in declared, f"{rule['alert']}: {series} is not served"
            if series in labels_of:  # a family with samples here (the evaluation's has none without a release)
                assert used <= labels_of[series], f"{rule['alert']}: {used} not all labels of {series}"
                checked.add(series)
    assert {"tollgate_spend_usd", "tollgate_runs_total", "tollgate_latency_ms_bucket"} <= checked
