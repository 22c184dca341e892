"""The playground in the browser: an author opens a draft's playground, fills the variables, runs it on the
development key (the sandbox) and reads the answer, the cost and what redaction replaced."""

from __future__ import annotations

from decimal import Decimal

import pytest

from keys import services as key_services
from prompts import services
from tests.browser.signin import sign_in
from tests.factories import version_content
from tests.gateway.upstream import EMAIL, sandbox_requests
from usage.models import UsageRecord

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_author_tries_a_draft_and_sees_the_answer_and_its_cost(page, live_server, sandbox, author, custodian):
    prompt = services.prompt_create(
        actor=author, slug="support-summary", name="Support summary", purpose="Summaries", owner=author
    )
    draft = services.prompt_version_create(actor=author, prompt=prompt, content=version_content(), change_summary="v1")
    key = key_services.provider_key_create(
        actor=custodian, environment="development", label="sandbox-dev", secret="sk-ant-sandbox-browser-0002",
        owner=custodian, base_url=sandbox.url, monthly_cap_usd=Decimal(10),
    )  # fmt: skip

    sign_in(page, live_server.url, author)  # the `page` fixture fails the test on any CSP violation
    page.goto(f"{live_server.url}/admin/playground/{draft.pk}/")
    page.fill("#id_ticket", "The export button does nothing since this morning.")
    page.fill("#id_customer_email", EMAIL)
    page.click("#playground-run")
    page.wait_for_selector("#playground-result")
    page.screenshot(path="var/screenshot-playground.png", full_page=True)

    answer = page.inner_text("#playground-answer")
    assert "The export button does nothing since this morning." in answer
    assert EMAIL in answer  # rehydrated for the author
    assert EMAIL not in page.inner_text("#playground-user-message")  # what was sent: a placeholder
    assert "<CUSTOMER_EMAIL_1>" in page.inner_text("#playground-user-message")
    assert "CUSTOMER_EMAIL" in page.inner_text("#playground-redactions")
    assert page.inner_text("#playground-checks") == "passed"
    row = UsageRecord.objects.get()
    assert (row.endpoint, row.environment, row.provider_key_id, row.outcome) == (
        "playground", "development", key.pk, "ok")  # fmt: skip
    assert row.cost_usd > 0
    assert page.inner_text("#playground-cost").startswith("$0.0")
    assert f"#{row.pk}" in page.inner_text("#playground-ledger")
    assert all(EMAIL not in str(request) for request in sandbox_requests({"sandbox": sandbox}))
    # The form keeps the values for another try.
    assert page.input_value("#id_customer_email") == EMAIL
