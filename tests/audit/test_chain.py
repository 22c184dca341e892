"""The hash chain, its signed checkpoints and their anchors outside the database: every kind of tampering is
found at the right sequence number, and a trail whose checkpoints stopped is not reported intact."""

from __future__ import annotations

import io
import json
import logging
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import pytest
import time_machine
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction
from django.db.backends.utils import CursorWrapper

from audit.anchors import AuditAnchorConflict
from audit.chain import canonical, event_hash, signature_valid, signing_key
from audit.models import AuditCheckpoint, AuditEvent
from audit.services import audit_chain_verify, audit_checkpoints_write, audit_event_record

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 2, 10, 15, tzinfo=UTC)
# Checkpoints are written at 13:02 (to 13:00); verification runs before 14:15, within the grace.
NOW = datetime(2026, 11, 2, 13, 10, tzinfo=UTC)


@pytest.fixture
def trail(empty_trail: None) -> None:
    """Five events at 10:15, checkpoints for the hours up to 13:00."""
    with time_machine.travel(T0, tick=False):
        for number in range(1, 6):
            audit_event_record(
                action="test.change", actor_repr="system", changes={"n": number, "to": ["a", "b"]}, reason="why"
            )
    with time_machine.travel(datetime(2026, 11, 2, 13, 2, tzinfo=UTC), tick=False):
        audit_checkpoints_write()


@contextmanager
def tampering() -> Iterator[CursorWrapper]:
    """A cursor for tampering as someone with database access would: around the application's guards, and
    on PostgreSQL around the append-only triggers too (as the tables' owner or a superuser could)."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL session_replication_role = replica")
        yield cursor
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL session_replication_role = origin")


def sql(*statements: str) -> None:
    with tampering() as cursor:
        for statement in statements:
            cursor.execute(statement)


def verify(now: datetime = NOW) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with time_machine.travel(now, tick=False):
        try:
            call_command("verify_audit_chain", stdout=out, stderr=err)
        except SystemExit as exc:
            return int(str(exc.code)), out.getvalue(), err.getvalue()
    return 0, out.getvalue(), err.getvalue()


def rechain_from(sequence: int) -> None:
    """What a careful attacker does after editing event `sequence`: recompute every hash from there on
    and the head, so that the chain itself is unbroken."""
    previous = AuditEvent.objects.get(sequence=sequence - 1).hash if sequence > 1 else "0" * 64
    with tampering() as cursor:
        for event in AuditEvent.objects.filter(sequence__gte=sequence).order_by("sequence").values():
            event["previous_hash"] = previous
            previous = event_hash(dict(event))
            cursor.execute(
                "UPDATE audit_auditevent SET previous_hash = %s, hash = %s WHERE sequence = %s",
                [event["previous_hash"], previous, event["sequence"]],
            )
        cursor.execute("UPDATE audit_auditchainhead SET last_hash = %s", [previous])


def test_an_intact_trail_verifies(trail):
    code, out, _ = verify()

    assert code == 0
    assert "OK: 5 events (#1–#5) chained, 3 signed checkpoints verified, each equal to its anchor in " in out
    assert out.rstrip().endswith("anchored to 2026-11-02T13:00:00.000000Z.")


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
            4,
            "truncated",
        ),
        (lambda: sql("UPDATE audit_auditcheckpoint SET count = 4 WHERE first_sequence = 1"), 5, "signature"),
        # The attacks of the red-team report: the checkpoint rows that vouch for the events go too.
        (
            lambda: sql(
                "DELETE FROM audit_auditevent WHERE sequence >= 4",
                "UPDATE audit_auditchainhead SET last_sequence = 3, last_hash ="
                " (SELECT hash FROM audit_auditevent WHERE sequence = 3)",
                "DELETE FROM audit_auditcheckpoint",
            ),
            4,
            "truncated",
        ),
        (
            lambda: [
                sql("UPDATE audit_auditevent SET reason = 'other' WHERE sequence = 3"),  # type: ignore[func-returns-value]
                rechain_from(3),  # type: ignore[func-returns-value]
                sql("DELETE FROM audit_auditcheckpoint"),  # type: ignore[func-returns-value]
            ],
            1,
            "edited and the chain recomputed",
        ),
        (lambda: sql("DELETE FROM audit_auditcheckpoint WHERE first_sequence IS NULL"), 5, "deleted"),
    ],
    ids=[
        "edited",
        "deleted",
        "reordered",
        "inserted",
        "truncated",
        "truncated-with-head",
        "checkpoint-edited",
        "truncated-with-head-and-checkpoints",
        "rechained-with-checkpoints-deleted",
        "checkpoint-deleted",
    ],
)
def test_each_kind_of_tampering_fails_at_the_right_sequence(trail, tamper, sequence, says):
    tamper()

    code, _, err = verify()

    assert code == 1
    assert err.startswith(f"FAILED at sequence {sequence}:")
    assert says in err


def test_an_event_inserted_with_a_valid_hash_after_the_head_is_found(trail):
    """Someone appends a well-formed event directly: the chain head never handed out its number."""
    with time_machine.travel(NOW, tick=False):
        audit_event_record(action="test.change", actor_repr="system")  # a well-chained sixth event…
    sql("UPDATE audit_auditchainhead SET last_sequence = 5")  # …that the head never handed out

    report = audit_chain_verify(now=NOW)

    assert report.problem is not None
    assert report.problem.sequence == 6
    assert "inserted" in report.problem.reason


def test_nothing_in_the_application_edits_or_deletes_a_checkpoint(trail):
    checkpoint = AuditCheckpoint.objects.first()

    with pytest.raises(Exception, match="cannot"):
        checkpoint.save()
    with pytest.raises(Exception, match="cannot"):
        checkpoint.delete()


# --- anchors -------------------------------------------------------------------------------------------


def test_each_checkpoint_leaves_the_database_as_a_read_only_file_that_verifies_on_its_own(trail, anchor_dir):
    names = sorted(path.name for path in anchor_dir.iterdir())

    assert names == [
        "checkpoint-20261102T1100Z.json",
        "checkpoint-20261102T1200Z.json",
        "checkpoint-20261102T1300Z.json",
    ]
    document = json.loads((anchor_dir / names[0]).read_bytes())
    assert document["checkpoint"] == {
        "period_end": "2026-11-02T11:00:00.000000Z", "first_sequence": 1, "last_sequence": 5, "count": 5,
        "last_hash": AuditEvent.objects.get(sequence=5).hash, "previous_signature": "",
    }  # fmt: skip
    assert signature_valid(signing_key().public_key(), canonical(document["checkpoint"]), document["signature"])
    assert document["signature"] == AuditCheckpoint.objects.order_by("period_end").first().signature
    assert stat.S_IMODE(os.stat(anchor_dir / names[0]).st_mode) == 0o444


def test_each_checkpoint_is_logged_as_one_json_line_for_a_log_shipper(empty_trail, caplog):
    with time_machine.travel(T0, tick=False):
        audit_event_record(action="test.change", actor_repr="system")
    with caplog.at_level(logging.INFO, logger="tollgate.audit.anchor"), time_machine.travel(NOW, tick=False):
        audit_checkpoints_write()

    lines = [json.loads(record.getMessage()) for record in caplog.records if record.name == "tollgate.audit.anchor"]
    assert [line["audit_checkpoint"]["period_end"] for line in lines] == [
        "2026-11-02T11:00:00.000000Z", "2026-11-02T12:00:00.000000Z", "2026-11-02T13:00:00.000000Z",
    ]  # fmt: skip
    assert set(lines[0]["audit_checkpoint"]) == {"period_end", "last_sequence", "last_hash", "signature"}


def test_a_removed_or_altered_anchor_fails_verification(trail, anchor_dir):
    newest = anchor_dir / "checkpoint-20261102T1300Z.json"
    newest.unlink()
    code, _, err = verify()
    assert code == 1
    assert "has no anchor" in err

    middle = anchor_dir / "checkpoint-20261102T1200Z.json"
    document = json.loads(middle.read_bytes())
    document["checkpoint"]["count"] = 3
    middle.chmod(0o644)
    middle.write_bytes(canonical(document))
    code, _, err = verify()
    assert code == 1
    assert "anchor checkpoint-20261102T1200Z.json: its signature does not verify" in err


def test_a_retried_run_finds_its_own_anchors_and_a_different_one_raises_the_alarm(trail, anchor_dir, caplog):
    sql("DELETE FROM audit_auditcheckpoint WHERE first_sequence IS NULL")  # as if the run had died after the files
    with time_machine.travel(datetime(2026, 11, 2, 13, 3, tzinfo=UTC), tick=False):
        assert len(audit_checkpoints_write()) == 2
    assert verify()[0] == 0

    # Someone rewrites the trail and deletes the checkpoint rows: the next run signs other bytes for 11:00.
    sql("UPDATE audit_auditevent SET reason = 'other' WHERE sequence = 3")
    rechain_from(3)
    sql("DELETE FROM audit_auditcheckpoint")
    with time_machine.travel(datetime(2026, 11, 2, 14, 5, tzinfo=UTC), tick=False), pytest.raises(AuditAnchorConflict):
        audit_checkpoints_write()

    assert AuditCheckpoint.objects.count() == 0
    assert any(record.levelno == logging.CRITICAL and "anchor conflict" in record.getMessage()
               for record in caplog.records)  # fmt: skip
    alarm = AuditEvent.objects.get(action="audit.anchor_conflict")
    assert alarm.object_repr == "checkpoint-20261102T1100Z.json"
    assert (anchor_dir / "checkpoint-20261102T1100Z.json").stat().st_mode & 0o222 == 0


def test_checkpoints_signed_before_anchors_existed_are_anchored_once(trail, anchor_dir, settings, tmp_path):
    settings.TOLLGATE_AUDIT_ANCHOR_DIR = fresh = tmp_path / "new-anchors"
    assert verify()[0] == 1  # three rows without anchors

    with time_machine.travel(datetime(2026, 11, 2, 13, 5, tzinfo=UTC), tick=False):
        assert audit_checkpoints_write() == []

    assert sorted(path.name for path in fresh.iterdir()) == sorted(path.name for path in anchor_dir.iterdir())
    assert verify()[0] == 0


# --- a trail whose checkpoints stopped -------------------------------------------------------------------


def test_the_last_whole_hour_must_be_anchored_once_the_grace_has_passed(trail):
    assert verify(datetime(2026, 11, 2, 14, 14, tzinfo=UTC))[0] == 0  # 14:00 is due at 14:15

    code, _, err = verify(datetime(2026, 11, 2, 14, 16, tzinfo=UTC))

    assert code == 1
    assert err.startswith("FAILED at sequence 6: no anchor covers the hour to 2026-11-02 14:00 UTC")
    assert "newest anchor: checkpoint-20261102T1300Z.json" in err


def test_a_trail_that_was_never_checkpointed_fails_once_an_hour_is_due(empty_trail):
    with time_machine.travel(T0, tick=False):
        audit_event_record(action="test.change", actor_repr="system")

    assert verify(datetime(2026, 11, 2, 11, 14, tzinfo=UTC))[0] == 0  # a new installation, within the grace
    code, _, err = verify(datetime(2026, 11, 2, 11, 16, tzinfo=UTC))
    assert code == 1
    assert "no anchor covers the hour to 2026-11-02 11:00 UTC (newest anchor: none in" in err


def test_the_grace_is_a_setting(trail, settings):
    settings.TOLLGATE_AUDIT_CHECKPOINT_GRACE_MINUTES = 30

    assert verify(datetime(2026, 11, 2, 14, 20, tzinfo=UTC))[0] == 0
    assert verify(datetime(2026, 11, 2, 14, 31, tzinfo=UTC))[0] == 1


def test_verification_reads_the_anchors_from_another_directory_when_told(trail, anchor_dir, tmp_path):
    copy = tmp_path / "copy"
    copy.mkdir()
    for path in anchor_dir.iterdir():
        (copy / path.name).write_bytes(path.read_bytes())
    (copy / "checkpoint-20261102T1300Z.json").unlink()
    out, err = io.StringIO(), io.StringIO()

    with time_machine.travel(NOW, tick=False), pytest.raises(SystemExit):
        call_command("verify_audit_chain", "--anchors", str(copy), stdout=out, stderr=err)
    assert "checkpoint 2026-11-02 13:00 has no anchor in " + str(copy) in err.getvalue()


# --- the database refuses ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_auditevent SET reason = 'other' WHERE sequence = 3",
        "DELETE FROM audit_auditevent WHERE sequence = 5",
        "UPDATE audit_auditcheckpoint SET count = 0",
        "DELETE FROM audit_auditcheckpoint",
        "UPDATE usage_usagerecord SET cost_usd = 0",
        "DELETE FROM usage_usagerecord",
    ],
)
def test_postgresql_refuses_update_and_delete_of_the_trail_and_the_ledger(trail, statement):
    if connection.vendor != "postgresql":
        pytest.skip("the append-only triggers are PostgreSQL's (SQLite has no roles to separate)")
    from usage.settlement import call_settle

    call_settle(record={"request_id": "r1", "environment": "production", "endpoint": "run", "requested_model": "m",
                        "model": "m", "outcome": "ok"})  # fmt: skip

    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(statement)
    assert verify()[0] == 0


def test_a_negative_grace_stops_start_up_naming_the_setting():
    from tests.config.test_settings import PRODUCTION, manage

    result = manage("check", **PRODUCTION, TOLLGATE_AUDIT_CHECKPOINT_GRACE_MINUTES="-5")

    assert result.returncode != 0
    assert "TOLLGATE_AUDIT_CHECKPOINT_GRACE_MINUTES" in result.stderr
