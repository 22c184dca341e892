from __future__ import annotations

import threading

import pytest
from django.db import connection, transaction

from audit.models import AuditEvent, AuditLogIsAppendOnly
from audit.services import audit_chain_verify, audit_event_record
from core.context import RequestContext, bound

pytestmark = pytest.mark.django_db


def test_events_are_numbered_without_gaps(superuser):
    before = AuditEvent.objects.count()  # the superuser's creation is on the trail too

    events = [audit_event_record(action="test.event", actor=superuser) for _ in range(3)]

    assert [event.sequence for event in events] == [before + 1, before + 2, before + 3]


def test_an_event_records_who_what_and_from_where(superuser):
    with bound(RequestContext(request_id="req-abc", client_ip="203.0.113.9")):
        event = audit_event_record(
            action="user.update", actor=superuser, target=superuser, changes={"email": ["a@x", "b@x"]}, reason="typo"
        )

    event.refresh_from_db()
    assert event.actor == superuser
    assert event.actor_repr == "root-admin"
    assert (event.object_type, event.object_id, event.object_repr) == ("auth.user", str(superuser.pk), "root-admin")
    assert event.changes == {"email": ["a@x", "b@x"]}
    assert (event.request_id, event.client_ip, event.reason) == ("req-abc", "203.0.113.9", "typo")


def test_secret_values_never_reach_the_trail(superuser):
    canary = "sk-ant-canary-7d3f9e"
    audit_event_record(
        action="key.create",
        actor=superuser,
        changes={"label": "prod", "api_key": canary, "nested": {"webhook_secret": canary}, "password": canary},
    )

    stored = AuditEvent.objects.get(action="key.create")
    assert canary not in str(stored.changes)
    assert stored.changes["label"] == "prod"
    assert stored.changes["api_key"] == "[redacted]"


def test_events_cannot_be_changed_or_removed(superuser):
    event = audit_event_record(action="test.event", actor=superuser)

    event.action = "tampered"
    with pytest.raises(AuditLogIsAppendOnly):
        event.save()
    with pytest.raises(AuditLogIsAppendOnly):
        event.delete()
    with pytest.raises(AuditLogIsAppendOnly):
        AuditEvent.objects.filter(pk=event.pk).update(action="tampered")
    with pytest.raises(AuditLogIsAppendOnly):
        AuditEvent.objects.all().delete()
    assert AuditEvent.objects.filter(action="test.event").count() == 1


def test_an_event_rolls_back_with_the_change_it_describes(superuser):
    def change_that_fails() -> None:
        with transaction.atomic():
            audit_event_record(action="test.event", actor=superuser)
            raise RuntimeError("the change failed")

    with pytest.raises(RuntimeError):
        change_that_fails()

    assert not AuditEvent.objects.filter(action="test.event").exists()


@pytest.mark.django_db(transaction=True)
def test_concurrent_appends_keep_one_gapless_sequence_and_one_valid_chain():
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises whole-database writes; the row lock matters on PostgreSQL")
    errors: list[BaseException] = []
    # A transactional test that ran before leaves the role sync's events behind (a flush re-runs it).
    before = AuditEvent.objects.count()

    def append() -> None:
        try:
            for _ in range(10):
                audit_event_record(action="test.concurrent", actor_repr="system")
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=append) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert sorted(AuditEvent.objects.values_list("sequence", flat=True)) == list(range(1, before + 81))
    # The chain itself: verified as of its first event, before any hour it spans needed a checkpoint.
    first = AuditEvent.objects.order_by("sequence").values_list("occurred_at", flat=True).first()
    assert audit_chain_verify(now=first).problem is None
