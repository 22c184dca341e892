"""Two-factor authentication in the browser: an approver without a device is sent to enrolment and cannot
approve; after enrolling an authenticator app (the code computed from the secret on the page) they can;
and a recovery code signs in once."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from identity import mfa
from prompts import services
from prompts.models import PromptVersion
from tests.browser.signin import code_for, second_factor, sign_in
from tests.factories import version_content

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _in_review(author: User) -> PromptVersion:
    prompt = services.prompt_create(
        actor=author, slug="support-summary", name="Support summary", purpose="Summaries", owner=author
    )
    version = services.prompt_version_create(
        actor=author, prompt=prompt, content=version_content(), change_summary="v1"
    )
    return services.prompt_version_submit(actor=author, version=version)


def test_an_approver_without_a_device_enrols_before_approving(live_server, page, author, approver):
    version = _in_review(author)
    base = live_server.url

    sign_in(page, base, approver, second=False)
    assert page.url == f"{base}/admin/mfa/enrol/"
    page.goto(f"{base}/admin/prompts/promptversion/{version.pk}/do/approve/")
    assert page.url == f"{base}/admin/mfa/enrol/"  # not the approval form
    assert page.locator("#mfa-qr").is_visible()
    assert page.locator("#mfa-qr").evaluate("image => image.complete && image.naturalWidth > 0")
    version.refresh_from_db()
    assert version.status == "in_review"

    codes = second_factor(page, approver)
    assert len(codes) == mfa.RECOVERY_CODE_COUNT
    page.screenshot(path="var/screenshot-mfa-recovery-codes.png", full_page=True)

    page.goto(f"{base}/admin/prompts/promptversion/{version.pk}/change/")
    page.click("#action-approve")
    page.fill("#id_reason", "Reviewed after enrolling a second factor.")
    page.click("#confirm")
    assert page.inner_text("#version-status") == "APPROVED"


def test_a_recovery_code_signs_in_once(live_server, browser, approver):
    key = mfa.totp_key_new()
    _, codes = mfa.mfa_totp_enrol(actor=approver, key=key, token=code_for(key))
    base = live_server.url

    first = browser.new_context().new_page()
    sign_in(first, base, approver, second=False)
    assert "/admin/mfa/verify/" in first.url
    first.fill("#id_code", codes[0])
    first.click("#mfa-submit")
    first.wait_for_selector("#content-main")
    assert first.url == f"{base}/admin/"
    assert "9 left" in first.inner_text(".messagelist")

    again = browser.new_context().new_page()
    sign_in(again, base, approver, second=False)
    again.fill("#id_code", codes[0])
    again.click("#mfa-submit")
    assert "not valid" in again.inner_text(".errorlist")
    again.goto(f"{base}/admin/prompts/")
    assert "/admin/mfa/verify/" in again.url
