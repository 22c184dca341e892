from __future__ import annotations

import pytest

from audit.models import AuditEvent
from tests.factories import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_auditor_logs_into_the_admin_and_sees_the_audit_trail(live_server, page, auditor):
    page.goto(f"{live_server.url}/admin/")
    page.fill("#id_username", auditor.username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")

    page.wait_for_selector("#user-tools")
    assert "Tollgate" in page.title()
    page.click("text=Audit events")
    page.wait_for_selector("#result_list")
    assert "auth.login" in page.inner_text("#result_list")
    assert AuditEvent.objects.filter(action="auth.login", actor=auditor).exists()


def test_a_wrong_password_is_refused_in_the_browser(live_server, page, auditor):
    page.goto(f"{live_server.url}/admin/")
    page.fill("#id_username", auditor.username)
    page.fill("#id_password", "not-the-password")
    page.click("input[type=submit]")

    assert "Please enter the correct username and password" in page.inner_text(".errornote")
    assert AuditEvent.objects.filter(action="auth.login_failed").count() == 1
