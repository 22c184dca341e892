"""Four-eyes in the browser: an author submits, an approver reads the diff, approves and releases."""

from __future__ import annotations

import pytest

from prompts import services
from prompts.models import Release
from tests.browser.signin import sign_in
from tests.factories import version_content

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

NEW_RULE = "Never include the customer's e-mail address in the summary."


def log_in(browser, live_server, user):
    page = browser.new_context().new_page()
    page.set_default_timeout(15_000)
    sign_in(page, live_server.url, user)
    return page


def test_author_submits_approver_reviews_the_diff_approves_and_releases(browser, live_server, author, approver):
    prompt = services.prompt_create(
        actor=author, slug="support-summary", name="Support summary", purpose="Summaries", owner=author
    )
    v1 = services.prompt_version_create(actor=author, prompt=prompt, content=version_content(), change_summary="v1")
    services.prompt_version_submit(actor=author, version=v1)
    services.prompt_version_approve(actor=approver, version=v1, note="ok")
    for environment in ("development", "staging"):
        services.prompt_version_release(actor=approver, version=v1, environment=environment, reason="initial")
    v2 = services.prompt_version_create(
        actor=author,
        prompt=prompt,
        content=version_content(system_prompt=v1.system_prompt + "\n" + NEW_RULE),
        change_summary="Keep e-mail addresses out of summaries",
    )
    version_url = f"{live_server.url}/admin/prompts/promptversion/{v2.pk}/change/"

    as_author = log_in(browser, live_server, author)
    as_author.goto(version_url)
    assert as_author.locator("#action-approve").count() == 0
    as_author.click("#action-submit")
    as_author.click("#confirm")
    assert as_author.inner_text("#version-status") == "IN REVIEW"

    as_approver = log_in(browser, live_server, approver)
    as_approver.goto(version_url)
    diff = as_approver.inner_text("#diff-live")
    assert f"+ {NEW_RULE}" in diff
    as_approver.click("#action-approve")
    as_approver.fill("#id_reason", "The new rule matches the data-minimisation policy.")
    as_approver.click("#confirm")
    assert as_approver.inner_text("#version-status") == "APPROVED"
    as_approver.click("#action-release")
    as_approver.select_option("#id_environment", "staging")
    as_approver.fill("#id_reason", "Roll out to staging for the support team to try")
    as_approver.click("#confirm")
    as_approver.screenshot(path="var/screenshot-prompt-released.png", full_page=True)

    assert "live in development (v1), staging (v2)" in as_approver.inner_text("#review-panel")
    assert Release.objects.get(prompt=prompt, environment="staging").version == v2
