"""The hash chain and its signed checkpoints: every kind of tampering is found at the right sequence number."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest
import time_machine
from django.core.management import call_command
from django.db import connection

from audit.models import AuditCheckpoint, AuditEvent
from audit.services import audit_chain_verify, audit_checkpoints_write, audit_event_record

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 2, 10, 15, tzinfo=UTC)


@pytest.fixture
def trail() -> None:
    """Five events at 10:15, checkpoints for the hours up to 13:00."""
    with time_machine.travel(T0, tick=False):
        for number in range(1, 6):
            audit_event_record(
                action="test.change", actor_repr="system", changes={"n": number, "to": ["a", "b"]}, reason="why"
            )
    with time_machine.travel(datetime(2026, 11, 2, 13, 2, tzinfo=UTC), tick=False):
        audit_checkpoints_write()


def sql(*statements: str) -> None:
    """Tampering as someone with database access would: around the application's guards."""
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)


def verify() -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("verify_audit_chain", stdout=out, stderr=err)
    except SystemExit as exc:
        return int(str(exc.code)), out.getvalue(), err.getvalue()
    return 0, out.getvalue(), err.getvalue()


def test_an_intact_trail_verifies(trail):
    code, out, _ = verify()

    assert code == 0
    assert "OK: 5 events (#1–#5) chained, 3 signed checkpoints verified." in out


def test_checkpoints_cover_every_hour_empty_ones_included_and_chain_their_signatures(trail):
    checkpoints = list(AuditCheckpoint.objects.order_by("period_end"))

    assert [c.period_end.hour for c in checkpoints] == [11, 12, 13]
    assert [(c.first_sequence, c.last_sequence, c.count) for c in checkpoints] == [
        (1, 5, 5),
        (None, 5, 0),
        (None, 5, 0),
    ]
    assert checkpoints[0].previous_signature == ""
    assert checkpoints[1].previous_signature == checkpoints[0].signature
    assert checkpoints[0].last_hash == AuditEvent.objects.get(sequence=5).hash
    with time_machine.travel(datetime(2026, 11, 2, 13, 59, tzinfo=UTC), tick=False):
        assert audit_checkpoints_write() == []  # the hour is not over


@pytest.mark.parametrize(
    ("tamper", "sequence", "says"),
    [
        (lambda: sql("UPDATE audit_auditevent SET reason = 'other' WHERE sequence = 3"), 3, "edited"),
        (lambda: sql("DELETE FROM audit_auditevent WHERE sequence = 3"), 3, "missing"),
        (
            lambda: sql(
                "UPDATE audit_auditevent SET sequence = 100 WHERE sequence = 2",
                "UPDATE audit_auditevent SET sequence = 2 WHERE sequence = 3",
                "UPDATE audit_auditevent SET sequence = 3 WHERE sequence = 100",
            ),
            2,
            "reordered",
        ),
        (
            lambda: sql(
                "INSERT INTO audit_auditevent (sequence, occurred_at, actor_repr, action, object_type, object_id,"
                " object_repr, changes, reason, request_id, previous_hash, hash)"
                " SELECT 6, occurred_at, 'mallory', 'test.change', '', '', '', '{}', '', '', hash, hash"
                " FROM audit_auditevent WHERE sequence = 5"
            ),
            6,
            "edited",
        ),
        (lambda: sql("DELETE FROM audit_auditevent WHERE sequence >= 4"), 4, "truncated"),
        (
            lambda: sql(
                "DELETE FROM audit_auditevent WHERE sequence >= 4", "UPDATE audit_auditchainhead SET last_sequence = 3"
            ),
            5,
            "truncated",
        ),
        (lambda: sql("UPDATE audit_auditcheckpoint SET count = 4 WHERE first_sequence = 1"), 5, "signature"),
    ],
    ids=["edited", "deleted", "reordered", "inserted", "truncated", "truncated-with-head", "checkpoint-edited"],
)
def test_each_kind_of_tampering_fails_at_the_right_sequence(trail, tamper, sequence, says):
    tamper()

    code, _, err = verify()

    assert code == 1
    assert err.startswith(f"FAILED at sequence {sequence}:")
    assert says in err


def test_an_event_inserted_with_a_valid_hash_after_the_head_is_found(trail):
    """Someone appends a well-formed event directly: the chain head never handed out its number."""
    audit_event_record(action="test.change", actor_repr="system")  # a well-chained sixth event…
    sql("UPDATE audit_auditchainhead SET last_sequence = 5")  # …that the head never handed out

    report = audit_chain_verify()

    assert report.problem is not None
    assert report.problem.sequence == 6
    assert "inserted" in report.problem.reason


def test_nothing_in_the_application_edits_or_deletes_a_checkpoint(trail):
    checkpoint = AuditCheckpoint.objects.first()

    with pytest.raises(Exception, match="cannot"):
        checkpoint.save()
    with pytest.raises(Exception, match="cannot"):
        checkpoint.delete()
