from __future__ import annotations

import pytest

from audit.models import AuditEvent
from tests.browser.conftest import REPORT_CSP_VIOLATIONS
from tests.factories import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def sign_in(page, live_server, user) -> None:
    page.goto(f"{live_server.url}/admin/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#user-tools")


def test_sign_out_everywhere_else_ends_the_other_browsers_session(live_server, browser, page, auditor):
    other_context = browser.new_context()
    other_context.add_init_script(REPORT_CSP_VIOLATIONS)
    other = other_context.new_page()
    other.set_default_timeout(15_000)
    try:
        sign_in(page, live_server, auditor)
        sign_in(other, live_server, auditor)

        page.click("#user-sessions")
        page.wait_for_selector("#session-list")
        assert page.locator(".session-row").count() == 2
        assert page.locator(".session-current").count() == 1
        page.click("#end-others")
        page.wait_for_selector(".messagelist")
        assert "Signed out everywhere else: 1 session(s) ended." in page.inner_text(".messagelist")
        assert page.locator(".session-row").count() == 1

        other.goto(f"{live_server.url}/admin/audit/")
        assert "/admin/login/" in other.url
        other.wait_for_selector("#id_username")
        page.goto(f"{live_server.url}/admin/audit/")
        assert "/admin/audit/" in page.url
        assert AuditEvent.objects.filter(action="session.end", changes__cause="signed_out_everywhere_else").exists()
    finally:
        other_context.close()
