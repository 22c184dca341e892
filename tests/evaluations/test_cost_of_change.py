"""The cost of a change before approval: the system prompt counted at Anthropic (the sandbox, through the
official SDK) against the live version's, the monthly difference from the prompt's roll-ups and the price
book, shown on the review page and recorded with the approval (audit event and change-management
evidence)."""

from __future__ import annotations

import io
import json
import math
import secrets
import zipfile
from datetime import timedelta
from decimal import Decimal
from typing import Any

import anthropic
import pytest
from django.test import Client
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audit.evidence import Period, evidence_export
from audit.models import AuditEvent
from evaluations.costs import PROBE_MESSAGES, cache_hit_ratio, monthly_cost_difference
from evaluations.models import SystemPromptCount
from keys import services as key_services
from prompts import hooks, services
from tests.factories import version_content
from tests.gateway.upstream import inject, sandbox_requests
from usage.models import Price, UsageRecord, UsageRollup

pytestmark = pytest.mark.django_db

DEV_SECRET = "sk-ant-sandbox-test-key-0003"
NEW_RULE = " Never include the customer's e-mail address in the summary; name the product and the fault instead."
MODEL = "claude-sonnet-4-6"


@pytest.fixture
def dev_key(world, custodian):
    return key_services.provider_key_create(
        actor=custodian,
        environment="development",
        label="sandbox-dev",
        secret=DEV_SECRET,
        owner=custodian,
        base_url=world["sandbox"].url,
        monthly_cap_usd=Decimal(100),
    )


@pytest.fixture
def in_review(world, author):
    """v2 of the world's prompt (v1 live in staging and production), with a longer system prompt, in review."""
    v1 = world["version"]
    v2 = services.prompt_version_create(
        actor=author,
        prompt=world["prompt"],
        content=version_content(system_prompt=v1.system_prompt + NEW_RULE),
        change_summary="Keep e-mail addresses out of summaries",
    )
    return services.prompt_version_submit(actor=author, version=v2)


def page(user, version) -> str:
    client = Client()
    client.force_login(user)
    response = client.get(f"/admin/prompts/promptversion/{version.pk}/change/")
    assert response.status_code == 200
    return response.content.decode()


def count_requests(world) -> list[dict]:
    return [request for request in sandbox_requests(world) if request["path"].endswith("/v1/messages/count_tokens")]


def sandbox_count(world, system_prompt: str) -> int:
    """What the sandbox counts for this system prompt, asked directly through the official SDK."""
    sdk = anthropic.Anthropic(api_key=DEV_SECRET, base_url=world["sandbox"].url, max_retries=0)
    messages: Any = PROBE_MESSAGES
    return sdk.messages.count_tokens(model=MODEL, system=system_prompt, messages=messages).input_tokens


def rollup(*, hours_ago: float, environment: str = "production", endpoint: str = "run", outcome: str = "ok",
           calls: int, read: int = 0, written: int = 0, slug: str = "support-summary") -> None:  # fmt: skip
    UsageRollup.objects.create(
        key=secrets.token_hex(32),
        hour=(timezone.now() - timedelta(hours=hours_ago)).replace(minute=0, second=0, microsecond=0),
        environment=environment,
        prompt_slug=slug,
        prompt_version=1,
        model=MODEL,
        endpoint=endpoint,
        outcome=outcome,
        calls=calls,
        cache_read_tokens=read,
        cache_write_tokens=written,
    )


def seed_traffic() -> None:
    """Production's last 30 days (counted), and rows that must not be: older, staging, counts, failures,
    another prompt."""
    rollup(hours_ago=2, calls=1200, read=90_000, written=10_000)
    rollup(hours_ago=24 * 10, endpoint="stream", calls=800, read=30_000, written=10_000)
    rollup(hours_ago=24 * 31, calls=5000, read=1, written=1_000_000)
    rollup(hours_ago=2, environment="staging", calls=700, read=0, written=500)
    rollup(hours_ago=2, endpoint="count", calls=40)
    rollup(hours_ago=2, outcome="server_error", calls=30, written=900)
    rollup(hours_ago=2, slug="other-prompt", calls=9000, read=5)


def expected_monthly(delta: int, calls: int, read: int, written: int) -> tuple[Decimal, Decimal, Price]:
    """The monthly difference computed here, from the price row in force and the formula of the docs."""
    price = Price.objects.filter(model=MODEL, effective_from__lte=timezone.now()).order_by("-effective_from")[0]
    ratio = (Decimal(read) / Decimal(read + written)).quantize(Decimal("0.0001"))
    per_token = ((1 - ratio) * price.input + ratio * price.cache_read) / Decimal(1_000_000)
    return calls * delta * per_token, ratio, price


def test_it_counts_each_system_prompt_once_at_the_sandbox_with_a_ledger_row_each(world, dev_key, in_review, approver):
    first = page(approver, in_review)
    again = page(approver, in_review)

    requests = count_requests(world)
    assert len(requests) == 2  # v2 and the live v1, the first time only
    v1, v2 = world["version"], in_review
    assert [json.dumps(request["body"]["system"]).count(NEW_RULE.strip()[:40]) for request in requests] == [1, 0]
    counts = {count.version.number: count for count in SystemPromptCount.objects.select_related("version")}
    assert counts[2].tokens == sandbox_count(world, v2.system_prompt)
    assert counts[1].tokens == sandbox_count(world, v1.system_prompt)
    assert counts[2].tokens > counts[1].tokens
    rows = UsageRecord.objects.filter(endpoint="count")
    assert sorted(rows.values_list("prompt_version", flat=True)) == [1, 2]
    for row in rows:
        assert (row.environment, row.provider_key_id, row.outcome, row.cost_usd) == ("development", dev_key.pk, "ok", 0)
        assert row.request_id == counts[row.prompt_version].request_id
    assert f'<strong id="cost-new-tokens">{counts[2].tokens}</strong>' in first
    assert f'<strong id="cost-delta">+{counts[2].tokens - counts[1].tokens}</strong>' in first
    assert "counted by Anthropic" in again


def test_the_monthly_difference_is_the_token_delta_at_30_days_of_production_traffic(
    world, dev_key, in_review, approver
):
    seed_traffic()

    html = page(approver, in_review)

    counts = dict(SystemPromptCount.objects.values_list("version__number", "tokens"))
    expected, ratio, price = expected_monthly(counts[2] - counts[1], calls=2000, read=120_000, written=20_000)
    figure = hooks.costs().of_change(in_review, count=False)
    assert (figure.calls, figure.cache_hit_ratio, figure.live_environment) == (2000, ratio, "production")
    assert figure.monthly_difference_usd == expected > 0
    assert figure.price.effective_from == price.effective_from
    assert f"+{expected.quantize(Decimal('0.01'))} USD" in html
    assert "2000 calls in the last 30 days in production" in html


def test_approval_records_the_figure_in_its_audit_event_and_the_evidence(world, dev_key, in_review, approver):
    seed_traffic()
    page(approver, in_review)
    counted_at = SystemPromptCount.objects.get(version=in_review).counted_at

    services.prompt_version_approve(actor=approver, version=in_review, note="Wording reviewed")
    services.prompt_version_release(actor=approver, version=in_review, environment="staging", reason="try it")

    counts = dict(SystemPromptCount.objects.values_list("version__number", "tokens"))
    expected, ratio, price = expected_monthly(counts[2] - counts[1], calls=2000, read=120_000, written=20_000)
    event = AuditEvent.objects.get(action="prompt_version.approve", object_id=str(in_review.pk))
    figure = event.changes["cost_of_change"]
    assert figure == {
        "counted_by": "anthropic",
        "count_failure": "",
        "counted_at": counted_at.isoformat(),
        "model": MODEL,
        "live_environment": "production",
        "live_version": 1,
        "live_count": counts[1],
        "new_count": counts[2],
        "count_delta": counts[2] - counts[1],
        "monthly_volume": 2000,
        "cache_hit_ratio": str(ratio),
        "monthly_cost_difference_usd": figure["monthly_cost_difference_usd"],
        "price_effective_from": price.effective_from.isoformat(),
    }
    assert Decimal(figure["monthly_cost_difference_usd"]) == expected
    assert len(count_requests(world)) == 2  # approval reused the counts

    out = io.BytesIO()
    today = timezone.now().date()
    evidence_export(type_name="change_management", period=Period(today, today), out=out, actor_repr="test")
    with zipfile.ZipFile(io.BytesIO(out.getvalue())) as archive:
        rows = [json.loads(line) for line in archive.read("change_management.jsonl").splitlines()]
    row = next(row for row in rows if row["version_to"] == 2)
    assert row["cost_live_version"] == 1
    assert (row["cost_live_tokens"], row["cost_new_tokens"]) == (counts[1], counts[2])
    assert row["cost_token_delta"] == counts[2] - counts[1]
    assert (row["cost_monthly_volume"], row["cost_cache_hit_ratio"]) == (2000, str(ratio))
    assert Decimal(row["cost_monthly_difference_usd"]) == expected
    assert row["cost_price_effective_from"] == price.effective_from.isoformat()
    assert row["cost_counted_at"] == counted_at.isoformat()
    assert row["cost_counted_by"] == "anthropic"


def test_approval_counts_a_version_whose_page_nobody_opened(world, dev_key, in_review, approver):
    services.prompt_version_approve(actor=approver, version=in_review, note="Wording reviewed")

    figure = AuditEvent.objects.get(action="prompt_version.approve", object_id=str(in_review.pk)).changes
    assert figure["cost_of_change"]["counted_by"] == "anthropic"
    assert figure["cost_of_change"]["new_count"] == sandbox_count(world, in_review.system_prompt)
    assert UsageRecord.objects.filter(endpoint="count").count() == 2


def test_without_a_development_key_the_page_says_so_and_falls_back_to_the_estimate(world, in_review, approver):
    seed_traffic()

    html = page(approver, in_review)
    page(approver, in_review)
    approved = services.prompt_version_approve(actor=approver, version=in_review, note="Fine without the count")

    assert count_requests(world) == []
    assert not UsageRecord.objects.filter(endpoint="count").exists()
    assert "Not counted by Anthropic (counting at Anthropic failed: No active provider key" in html
    assert "Character estimate" in html
    assert "Monthly difference (estimated)" in html
    assert approved.status == "approved"
    figure = AuditEvent.objects.get(action="prompt_version.approve", object_id=str(in_review.pk)).changes
    recorded = figure["cost_of_change"]
    assert recorded["counted_by"] == "estimate"
    assert "No active provider key" in recorded["count_failure"]
    estimate = {
        "new": math.ceil(len(in_review.system_prompt) / 4),
        "live": math.ceil(len(world["version"].system_prompt) / 4),
    }
    assert (recorded["new_count"], recorded["live_count"]) == (estimate["new"], estimate["live"])
    assert recorded["counted_at"] is None


def test_an_upstream_failure_is_recorded_once_and_not_retried_on_every_view(world, dev_key, in_review, approver):
    inject(world, status=500, count=10)

    html = page(approver, in_review)
    page(approver, in_review)

    count = SystemPromptCount.objects.get(version=in_review)
    assert count.tokens is None
    assert "Anthropic failed to answer" in count.error
    assert "counting at Anthropic failed: Anthropic failed to answer" in html
    assert list(UsageRecord.objects.filter(endpoint="count").values_list("outcome", flat=True)) == ["server_error"]


def test_a_draft_is_not_counted(world, dev_key, author, approver):
    draft = services.prompt_version_create(
        actor=author, prompt=world["prompt"], content=version_content(system_prompt="Short."), change_summary="x"
    )

    html = page(author, draft)

    assert count_requests(world) == []
    assert "not counted yet" in html


# --- properties -----------------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    delta=st.integers(min_value=-50_000, max_value=50_000),
    calls=st.integers(min_value=0, max_value=10**9),
    read=st.integers(min_value=0, max_value=10**12),
    written=st.integers(min_value=0, max_value=10**12),
)
def test_the_difference_has_the_sign_of_the_token_delta(delta, calls, read, written):
    price = Price(
        model=MODEL, input=Decimal(3), cache_write_5m=Decimal("3.75"), cache_write_1h=Decimal(6),
        cache_read=Decimal("0.30"), output=Decimal(15), long_context_threshold=200_000,
    )  # fmt: skip
    ratio = cache_hit_ratio(cache_read_tokens=read, cache_write_tokens=written)

    amount = monthly_cost_difference(price=price, token_delta=delta, calls=calls, cache_hit_ratio=ratio)

    assert Decimal(0) <= ratio <= Decimal(1)
    if delta == 0 or calls == 0:
        assert amount == 0
    else:
        assert (amount > 0) == (delta > 0)
        assert amount != 0
        assert monthly_cost_difference(price=price, token_delta=-delta, calls=calls, cache_hit_ratio=ratio) == -amount


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    calls=st.lists(st.integers(min_value=0, max_value=10**7), min_size=0, max_size=4),
    read=st.integers(min_value=0, max_value=10**10),
    written=st.integers(min_value=0, max_value=10**10),
    extra=st.text(alphabet="abcdefghij ,.", min_size=0, max_size=400),
)
def test_the_review_page_never_fails_whatever_the_traffic(world, dev_key, author, approver, calls, read, written,
                                                          extra):  # fmt: skip
    UsageRollup.objects.all().delete()
    for hours, volume in enumerate(calls):
        rollup(hours_ago=hours + 1, calls=volume, read=read, written=written)
    version = services.prompt_version_create(
        actor=author,
        prompt=world["prompt"],
        content=version_content(system_prompt=world["version"].system_prompt[:40] + extra),
        change_summary="generated",
    )
    services.prompt_version_submit(actor=author, version=version)

    page(approver, version)

    figure = hooks.costs().of_change(version, count=False)
    assert figure.counted
    assert figure.calls == sum(calls) >= 0
    assert figure.token_delta == figure.new_tokens - figure.live_tokens
    if figure.token_delta == 0 or figure.calls == 0:
        assert figure.monthly_difference_usd == 0
    else:
        assert (figure.monthly_difference_usd > 0) == (figure.token_delta > 0)
