"""An evaluation suite in the browser: an author adds a case, an approver runs the evaluation from the
version's page (against the sandbox) and reads each case's result."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from evaluations.models import EvaluationRun
from keys import services as key_services
from prompts import services
from tests.browser.test_prompt_review import log_in
from tests.factories import version_content

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_author_adds_a_case_and_the_approver_evaluates_the_version(
    browser, live_server, sandbox, author, approver, custodian
):
    prompt = services.prompt_create(
        actor=author, slug="support-summary", name="Support summary", purpose="Summaries", owner=author
    )
    version = services.prompt_version_create(
        actor=author, prompt=prompt, content=version_content(), change_summary="v1"
    )
    services.prompt_version_submit(actor=author, version=version)
    key_services.provider_key_create(
        actor=custodian, environment="development", label="sandbox-dev", secret="sk-ant-sandbox-browser-0001",
        owner=custodian, base_url=sandbox.url, monthly_cap_usd=Decimal(10),
    )  # fmt: skip

    as_author = log_in(browser, live_server, author)
    as_author.goto(f"{live_server.url}/admin/evaluations/evaluationcase/add/")
    as_author.select_option("#id_prompt", label="support-summary")
    as_author.fill("#id_name", "printer on fire")
    as_author.fill("#id_variables", json.dumps({"ticket": "My printer is on fire.", "customer_email": "a@b.example"}))
    as_author.fill("#id_expectations", json.dumps([{"contains": "printer is on fire"}, {"regex": "a@b\\.example"}]))
    as_author.fill("#id_reason", "The canonical fire ticket")
    as_author.click("input[name=_save]")
    as_author.wait_for_selector(".messagelist .success")

    as_approver = log_in(browser, live_server, approver)
    as_approver.goto(f"{live_server.url}/admin/prompts/promptversion/{version.pk}/change/")
    assert "none yet" in as_approver.inner_text("#latest-evaluation")
    as_approver.click("#action-evaluate")
    as_approver.click("#confirm")
    assert as_approver.inner_text("#evaluation-status") == "PASSED"
    assert "1 of 1 cases passed" in as_approver.inner_text("#latest-evaluation")
    as_approver.click("#latest-evaluation a")
    results = as_approver.inner_text("#evaluation-results")
    as_approver.screenshot(path="var/screenshot-evaluation.png", full_page=True)

    assert "printer on fire" in results
    assert "pass" in results
    assert "a@b.example" not in results  # the answer is kept with placeholders
    assert EvaluationRun.objects.get().requested_by == approver
