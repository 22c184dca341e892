"""Sign-ins, sign-outs and failed sign-ins are in the audit trail; passwords never are."""

from __future__ import annotations

import pytest

from audit.models import AuditEvent
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db


def test_a_login_and_logout_are_recorded_with_the_request(client, auditor):
    client.post("/admin/login/", {"username": auditor.username, "password": PASSWORD}, HTTP_X_REQUEST_ID="login-req-1")
    client.post("/admin/logout/")

    login, logout = AuditEvent.objects.filter(action__startswith="auth.").order_by("sequence")
    assert (login.action, login.actor, login.request_id, login.client_ip) == (
        "auth.login",
        auditor,
        "login-req-1",
        "127.0.0.1",
    )
    assert (logout.action, logout.actor) == ("auth.logout", auditor)


def test_a_failed_login_names_the_account_but_not_the_password(client, auditor):
    wrong_password = "canary-wrong-password-91c2"

    response = client.post("/admin/login/", {"username": auditor.username, "password": wrong_password})

    assert response.status_code == 200  # the form again, with an error
    event = AuditEvent.objects.get(action="auth.login_failed")
    assert event.action == "auth.login_failed"
    assert event.actor is None
    assert event.object_repr == auditor.username
    assert wrong_password not in str(AuditEvent.objects.values())
