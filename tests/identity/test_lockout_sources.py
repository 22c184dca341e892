"""Where failed sign-ins are counted: one IPv6 host holds a whole /64, and an IPv4-mapped address is its IPv4
address — neither buys a fresh allowance of guesses or of audit events."""

from __future__ import annotations

import pytest

from audit.models import AuditEvent
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db

LIMIT = 5
LOGIN = "/admin/login/"


def _sign_in(client, username: str, password: str, address: str):
    return client.post(LOGIN, {"username": username, "password": password, "next": "/admin/"}, REMOTE_ADDR=address)


def test_one_ipv6_host_cannot_guess_passwords_without_end(client, auditor):
    """Every IPv6 customer holds at least a /64: 2^64 addresses. Each counts as its own source, so one
    attacker tries 5 passwords per address for ever and is never locked out (and the right password
    still works from the same /64 after 100 wrong ones)."""
    for attempt in range(100):
        _sign_in(client, auditor.username, f"wrong-{attempt}", f"2001:db8:1:2::{attempt // LIMIT:x}")
    response = _sign_in(client, auditor.username, PASSWORD, "2001:db8:1:2::ffff")
    assert response.status_code == 429, "100 wrong passwords from one /64 did not lock it out"


def test_one_ipv6_host_cannot_grow_the_audit_trail_without_end(client):
    """docs/admin.md: one source appends at most LIMIT + 1 events per cool-off. From one /64, every address is a
    new source: 200 failed sign-ins append 200 events to the hash chain (each taking its head lock)."""
    before = AuditEvent.objects.count()
    for attempt in range(200):
        _sign_in(client, f"guess-{attempt}", "wrong", f"2001:db8:1:2::{attempt:x}")
    appended = AuditEvent.objects.count() - before
    assert appended <= LIMIT + 1, f"{appended} audit events from one /64"


def test_ipv4_mapped_address_is_the_same_source(client, auditor):
    """::ffff:192.0.2.7 and 192.0.2.7 are one host (a dual-stack listener reports either)."""
    for attempt in range(LIMIT):
        _sign_in(client, auditor.username, f"wrong-{attempt}", "192.0.2.7")
    response = _sign_in(client, auditor.username, f"wrong-{LIMIT}", "::ffff:192.0.2.7")
    assert response.status_code == 429
