"""Repeated failed sign-ins lock the source out for a cool-off, and cannot grow the audit trail unbounded."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from audit.models import AuditEvent
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db

LIMIT = 5  # TOLLGATE_LOGIN_FAILURE_LIMIT's default
LOGIN = "/admin/login/"


def _sign_in(client, username: str, password: str, **headers: str):
    return client.post(LOGIN, {"username": username, "password": password, "next": "/admin/"}, **headers)


def _signed_in(response) -> bool:
    return response.status_code == 302 and response["Location"] == "/admin/"


def test_a_hundred_wrong_passwords_lock_out_the_right_one_too(client, auditor):
    before = AuditEvent.objects.count()

    for attempt in range(100):
        _sign_in(client, auditor.username, f"wrong-{attempt}")
    response = _sign_in(client, auditor.username, PASSWORD)

    assert not _signed_in(response)
    assert response.status_code == 429
    assert "Sign-in temporarily locked" in response.content.decode()
    assert "15 minutes" in response.content.decode()
    new = AuditEvent.objects.count() - before
    assert new <= LIMIT + 1
    assert AuditEvent.objects.filter(action="auth.login_failed").count() == LIMIT
    assert AuditEvent.objects.filter(action="auth.lockout").count() == 1
    assert "wrong-" not in str(list(AuditEvent.objects.values()))


def test_the_right_password_works_again_after_the_cool_off(client, auditor):
    with time_machine.travel(timezone.now(), tick=False) as clock:
        for attempt in range(LIMIT):
            _sign_in(client, auditor.username, f"wrong-{attempt}")
        assert not _signed_in(_sign_in(client, auditor.username, PASSWORD))

        clock.shift(timedelta(minutes=16))

        assert _signed_in(_sign_in(client, auditor.username, PASSWORD))


def test_many_accounts_tried_from_one_address_lock_the_address(client, auditor, approver):
    for attempt in range(LIMIT):
        _sign_in(client, f"guess-{attempt}", "wrong-password")

    assert not _signed_in(_sign_in(client, approver.username, PASSWORD))
    assert AuditEvent.objects.filter(action__in=["auth.login_failed", "auth.lockout"]).count() <= LIMIT + 1


def test_another_address_behind_the_proxy_is_not_locked_by_someone_elses_failures(client, auditor, settings):
    settings.TOLLGATE_TRUSTED_PROXIES = 1
    attacker = {"HTTP_X_FORWARDED_FOR": "203.0.113.9", "REMOTE_ADDR": "10.0.0.2"}
    colleague = {"HTTP_X_FORWARDED_FOR": "198.51.100.7", "REMOTE_ADDR": "10.0.0.2"}

    for attempt in range(LIMIT + 3):
        _sign_in(client, auditor.username, f"wrong-{attempt}", **attacker)

    assert not _signed_in(_sign_in(client, auditor.username, PASSWORD, **attacker))
    assert _signed_in(_sign_in(client, auditor.username, PASSWORD, **colleague))
    lockout = AuditEvent.objects.get(action="auth.lockout")
    assert (lockout.client_ip, lockout.changes["ip_address"]) == ("203.0.113.9", "203.0.113.9")


def test_a_successful_sign_in_does_not_wipe_the_failures_counted_against_its_address(client, auditor, author):
    """Failures expire with the cool-off, not with a success: an insider cannot guess at a colleague's
    password, sign in as themselves to reset the count, and guess again."""
    for attempt in range(LIMIT - 1):
        _sign_in(client, auditor.username, f"wrong-{attempt}")
    assert _signed_in(_sign_in(client, author.username, PASSWORD))  # their own account, same address
    client.post("/admin/logout/")

    _sign_in(client, auditor.username, "one-more-wrong")

    assert _sign_in(client, auditor.username, PASSWORD).status_code == 429
