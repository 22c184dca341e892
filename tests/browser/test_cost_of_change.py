"""The cost of a change in the browser: an approver opens a version in review and reads its system prompt
counted at Anthropic (the sandbox) against the live version's, and what the difference costs a month."""

from __future__ import annotations

import secrets
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from evaluations.models import SystemPromptCount
from keys import services as key_services
from prompts import services
from tests.browser.screenshots import save
from tests.browser.test_prompt_review import log_in
from tests.factories import version_content
from usage.models import UsageRollup

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

NEW_RULE = "\nNever include the customer's e-mail address in the summary; name the product and the fault instead."


def test_an_approver_sees_the_counted_tokens_and_the_monthly_difference(
    browser, live_server, sandbox, author, approver, custodian
):
    prompt = services.prompt_create(
        actor=author, slug="support-summary", name="Support summary", purpose="Summaries", owner=author
    )
    v1 = services.prompt_version_create(actor=author, prompt=prompt, content=version_content(), change_summary="v1")
    services.prompt_version_submit(actor=author, version=v1)
    services.prompt_version_approve(actor=approver, version=v1, note="ok")
    for environment in ("staging", "production"):
        services.prompt_version_release(actor=approver, version=v1, environment=environment, reason="initial")
    key_services.provider_key_create(
        actor=custodian, environment="development", label="sandbox-dev", secret="sk-ant-sandbox-browser-0002",
        owner=custodian, base_url=sandbox.url, monthly_cap_usd=Decimal(10),
    )  # fmt: skip
    UsageRollup.objects.create(
        key=secrets.token_hex(32),
        hour=(timezone.now() - timedelta(days=3)).replace(minute=0, second=0, microsecond=0),
        environment="production",
        prompt_slug="support-summary",
        prompt_version=1,
        model="claude-sonnet-4-6",
        endpoint="run",
        outcome="ok",
        calls=250_000,
        cache_read_tokens=4_500_000,
        cache_write_tokens=500_000,
    )
    v2 = services.prompt_version_create(
        actor=author,
        prompt=prompt,
        content=version_content(system_prompt=v1.system_prompt + NEW_RULE),
        change_summary="Keep e-mail addresses out of summaries",
    )
    services.prompt_version_submit(actor=author, version=v2)

    as_approver = log_in(browser, live_server, approver)
    as_approver.goto(f"{live_server.url}/admin/prompts/promptversion/{v2.pk}/change/")
    panel = as_approver.inner_text("#cost-of-change")
    save(as_approver, "review-cost-of-change")

    counts = dict(SystemPromptCount.objects.values_list("version__number", "tokens"))
    assert as_approver.inner_text("#cost-new-tokens") == str(counts[2])
    assert as_approver.inner_text("#cost-live-tokens") == str(counts[1])
    assert as_approver.inner_text("#cost-delta") == f"+{counts[2] - counts[1]}"
    assert "counted by Anthropic" in panel
    assert "250000 calls in the last 30 days in production" in panel
    assert "cache-hit ratio 0.90" in panel
    assert as_approver.inner_text("#cost-monthly-usd").startswith("+")
    assert as_approver.inner_text("#cost-monthly-usd").endswith(" USD")
