"""A prompt's page in the browser: the author submits a draft from it, the approver approves from it, and
both compare two versions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from evaluations.models import EvaluationRun
from prompts import services
from prompts.models import PromptVersion
from tests.browser import screenshots
from tests.browser.signin import sign_in
from tests.factories import version_content
from usage.models import UsageRollup

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

NEW_RULE = "Never include the customer's e-mail address in the summary."


def seed_usage(slug: str) -> None:
    """Calls of v1 every other day for twelve days, and of v2 today, as the hourly roll-ups hold them."""
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    for day in range(0, 12, 2):
        for version, calls, errors in ((1, 40 + day * 3, day % 4), (2, 25, 1) if day < 2 else (None, 0, 0)):
            if version is None:
                continue
            for outcome, n in (("ok", calls - errors), ("overloaded", errors)):
                if n:
                    UsageRollup.objects.create(
                        key=f"{slug}-{day}-{version}-{outcome}", hour=now - timedelta(days=day),
                        environment="production",
                        prompt_slug=slug, prompt_version=version, model="claude-sonnet-4-6", endpoint="run",
                        outcome=outcome, calls=n, input_tokens=n * 420, output_tokens=n * 180,
                        cache_read_tokens=n * 300, cost_usd=Decimal(n) * Decimal("0.0039"),
                    )  # fmt: skip


def test_author_submits_and_approver_approves_from_the_prompts_page_then_compares(page, live_server, author, approver):
    prompt = services.prompt_create(
        actor=author, slug="support-summary", name="Support summary", purpose="Summaries for the support queue",
        owner=author,
    )  # fmt: skip
    v1 = services.prompt_version_create(actor=author, prompt=prompt, content=version_content(), change_summary="v1")
    services.prompt_version_submit(actor=author, version=v1)
    services.prompt_version_approve(actor=approver, version=v1, note="ok")
    for environment in ("development", "staging", "production"):
        services.prompt_version_release(actor=approver, version=v1, environment=environment, reason="Launch")
    EvaluationRun.objects.create(version=v1, content_hash=v1.content_hash, trigger="manual", status="passed",
                                 environment="development", cases_total=8, cases_passed=8, pass_rate=1.0)  # fmt: skip
    v2 = services.prompt_version_create(
        actor=author,
        prompt=prompt,
        content=version_content(system_prompt=v1.system_prompt + "\n" + NEW_RULE, max_tokens=300),
        change_summary="Keep e-mail addresses out of summaries",
    )
    seed_usage(prompt.slug)
    prompt_url = f"{live_server.url}/admin/prompts/prompt/{prompt.pk}/change/"

    sign_in(page, live_server.url, author)
    page.goto(prompt_url)
    assert page.locator("#action-approve-v2").count() == 0
    page.click("#action-submit-v2")
    page.click("#confirm")
    assert page.inner_text("#version-status") == "IN REVIEW"

    page.context.clear_cookies()
    sign_in(page, live_server.url, approver)
    page.goto(prompt_url)
    assert page.locator("#action-submit-v2").count() == 0
    assert "Production | v1" in page.inner_text("#live-production").replace("\t", " | ")
    page.click("#action-approve-v2")
    page.fill("#id_reason", "The new rule matches the data-minimisation policy.")
    page.click("#confirm")
    assert page.inner_text("#version-status") == "APPROVED"
    assert PromptVersion.objects.get(pk=v2.pk).reviewed_by == approver

    page.goto(prompt_url)
    assert "APPROVED" in page.inner_text("#version-2")
    page.click("#action-release-v2")
    page.select_option("#id_environment", "development")
    page.fill("#id_reason", "Try it in development first")
    page.click("#confirm")
    page.goto(prompt_url)
    assert "v2" in page.inner_text("#live-development")
    assert page.inner_text("#rollback-development") == "Roll back to v1"
    assert "25" in page.inner_text("#usage-versions")
    page.wait_for_function("() => window.Chart && Chart.getChart(document.querySelector('#usage-cost-per-day canvas'))")
    drawn = page.evaluate(
        "() => Chart.getChart(document.querySelector('#usage-cost-per-day canvas')).data.datasets[0].data"
    )
    assert len(drawn) == 30  # every day of the window
    assert sum(float(value) > 0 for value in drawn) == 6  # the six days with calls
    screenshots.save(page, "prompt-page")

    page.select_option("#compare-form select[name=a]", str(v1.pk))
    page.select_option("#compare-form select[name=b]", str(v2.pk))
    page.click("#compare-submit")
    diff = page.inner_text("#compare-diff")
    assert f"+ {NEW_RULE}" in diff
    assert "400 → 300" in diff  # max tokens
