"""Property: whatever single change someone with access to the database (or to a copy of the anchors)
makes to a trail whose hours are all checkpointed, verification fails. Edits, deletions, insertions,
reorderings and truncations of events, checkpoint rows, the chain head and anchor files are generated;
where a careful attacker would recompute the chain after a change (and rewrite the head, and delete the
checkpoint rows that vouch for what changed), the generated attack does so too. On PostgreSQL the rows
are changed under session_replication_role = replica, as a superuser or the tables' owner could."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import time_machine
from django.db import connection, models, transaction
from django.db.backends.utils import CursorWrapper
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from audit.chain import GENESIS, HASHED_FIELDS, canonical, event_hash
from audit.models import AuditChainHead, AuditCheckpoint, AuditEvent
from audit.services import audit_chain_verify, audit_checkpoints_write, audit_event_record

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 2, 13, 10, tzinfo=UTC)
TIMES = [(10, 5), (10, 40), (10, 41), (11, 20), (12, 1), (12, 30), (12, 59)]
EVENTS = len(TIMES)

TEXT = st.text(alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=20)
EVENT_FIELDS = {
    "actor_repr": TEXT,
    "action": TEXT,
    "object_type": TEXT,
    "object_id": TEXT,
    "object_repr": TEXT,
    "reason": TEXT,
    "request_id": TEXT,
    "changes": st.dictionaries(TEXT, st.integers() | TEXT, max_size=3),
    "occurred_at": st.integers(-600, 600).filter(bool).map(lambda minutes: timedelta(minutes=minutes)),
}
CHECKPOINT_FIELDS = {
    "first_sequence": st.none() | st.integers(0, 20),
    "last_sequence": st.integers(0, 20),
    "count": st.integers(0, 20),
    "last_hash": st.sampled_from(["0" * 64, "f" * 64]),
    "previous_signature": st.sampled_from(["", "AAAA"]),
    "signature": st.sampled_from(["", "AAAA"]),
    "period_end": st.integers(-3, 3).filter(bool).map(lambda hours: timedelta(hours=hours)),
}


@contextmanager
def tampering() -> Iterator[CursorWrapper]:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL session_replication_role = replica")
        yield cursor
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL session_replication_role = origin")


def update(queryset: models.QuerySet[Any], **values: Any) -> None:
    """QuerySet.update() itself, around the models' append-only guard."""
    models.QuerySet.update(queryset, **values)


def rechain(cursor: CursorWrapper, *, rewrite_head: bool = True) -> None:
    """Recompute every event's previous_hash and hash in sequence order, and the head."""
    previous, last = GENESIS, 0
    for event in AuditEvent.objects.order_by("sequence").values("id", *HASHED_FIELDS):
        event["previous_hash"] = previous
        previous, last = event_hash(event), event["sequence"]
        cursor.execute(
            "UPDATE audit_auditevent SET previous_hash = %s, hash = %s WHERE id = %s",
            [event["previous_hash"], previous, event["id"]],
        )
    if rewrite_head:
        cursor.execute("UPDATE audit_auditchainhead SET last_sequence = %s, last_hash = %s", [last, previous])


def renumber(cursor: CursorWrapper) -> None:
    """Close the gaps an attacker left, in order: 1, 2, 3, …"""
    ids = list(AuditEvent.objects.order_by("sequence").values_list("id", flat=True))
    cursor.execute(
        "UPDATE audit_auditevent SET sequence = -sequence"
    )  # out of the way of 1, 2, 3, … whatever they were
    for number, pk in enumerate(ids, start=1):
        cursor.execute("UPDATE audit_auditevent SET sequence = %s WHERE id = %s", [number, pk])


def hide_checkpoints(cursor: CursorWrapper, count: int) -> None:
    """The careful attacker deletes the newest `count` checkpoint rows (those that vouch for the change)."""
    if count:
        keep = AuditCheckpoint.objects.order_by("period_end").values_list("id", flat=True)
        doomed = list(keep)[-count:]
        for pk in doomed:
            cursor.execute("DELETE FROM audit_auditcheckpoint WHERE id = %s", [pk])


@dataclass(frozen=True)
class Attack:
    target: str
    kind: str
    details: dict[str, Any]

    def __str__(self) -> str:
        return f"{self.kind} {self.target} {self.details}"


@st.composite
def attacks(draw: st.DrawFn) -> Attack:
    target = draw(st.sampled_from(["event", "checkpoint", "head", "anchor"]))
    details: dict[str, Any] = {}
    if target == "event":
        kind = draw(st.sampled_from(["edit", "delete", "insert", "reorder", "truncate"]))
        details["sequence"] = draw(st.integers(1, EVENTS))
        details["rechain"] = draw(st.booleans())
        details["hide_checkpoints"] = draw(st.integers(0, 3)) if details["rechain"] else 0
        if kind == "edit":
            field = draw(st.sampled_from(sorted(EVENT_FIELDS)))
            details.update(field=field, value=draw(EVENT_FIELDS[field]))
        elif kind == "reorder":
            details["other"] = draw(st.integers(1, EVENTS).filter(lambda other: other != details["sequence"]))
        elif kind == "truncate":
            details["count"] = draw(st.integers(1, EVENTS))
    elif target == "checkpoint":
        kind = draw(st.sampled_from(["edit", "delete", "insert", "reorder", "truncate"]))
        details["index"] = draw(st.integers(0, 2))
        if kind == "edit":
            field = draw(st.sampled_from(sorted(CHECKPOINT_FIELDS)))
            details.update(field=field, value=draw(CHECKPOINT_FIELDS[field]))
        elif kind == "truncate":
            details["count"] = draw(st.integers(1, 3))
        elif kind == "insert":
            details["hours"] = draw(st.integers(1, 3))
    elif target == "head":
        kind = "edit"
        field = draw(st.sampled_from(["last_sequence", "last_hash", "row"]))
        value: object = draw(st.integers(0, 20)) if field == "last_sequence" else "f" * 64
        details.update(field=field, value=value)
    else:
        kind = draw(st.sampled_from(["edit", "delete", "insert", "reorder", "truncate"]))
        details["index"] = draw(st.integers(0, 2))
        if kind == "edit":
            field = draw(st.sampled_from(["period_end", "first_sequence", "last_sequence", "count", "last_hash",
                                          "previous_signature", "signature", "algorithm", "garbage"]))  # fmt: skip
            details.update(field=field, value=draw(st.integers(0, 20) | TEXT))
        elif kind == "truncate":
            details["count"] = draw(st.integers(1, 3))
    return Attack(target, kind, details)


def event_attack(cursor: CursorWrapper, attack: Attack) -> None:
    d = attack.details
    sequence = d["sequence"]
    if attack.kind == "edit":
        event = AuditEvent.objects.get(sequence=sequence)
        old = getattr(event, d["field"])
        new = old + d["value"] if d["field"] == "occurred_at" else d["value"]
        assume(json.loads(canonical(new)) != json.loads(canonical(old)))
        update(AuditEvent.objects.filter(sequence=sequence), **{d["field"]: new})
    elif attack.kind == "delete":
        cursor.execute("DELETE FROM audit_auditevent WHERE sequence = %s", [sequence])
        if d["rechain"]:
            renumber(cursor)
    elif attack.kind == "insert":
        neighbour = AuditEvent.objects.filter(sequence=sequence).values(*HASHED_FIELDS).get()
        if d["rechain"]:
            cursor.execute("UPDATE audit_auditevent SET sequence = sequence + 1000 WHERE sequence >= %s", [sequence])
            fields = {**neighbour, "sequence": sequence, "action": "mallory.was.here", "actor_id": None}
        else:
            fields = {**neighbour, "sequence": EVENTS + 1, "action": "mallory.was.here", "actor_id": None}
        fields["hash"] = event_hash(fields)
        AuditEvent(**fields).save()
        if d["rechain"]:
            renumber(cursor)
    elif attack.kind == "reorder":
        first, other = AuditEvent.objects.get(sequence=sequence).pk, AuditEvent.objects.get(sequence=d["other"]).pk
        cursor.execute("UPDATE audit_auditevent SET sequence = -1 WHERE id = %s", [first])
        cursor.execute("UPDATE audit_auditevent SET sequence = %s WHERE id = %s", [sequence, other])
        cursor.execute("UPDATE audit_auditevent SET sequence = %s WHERE id = %s", [d["other"], first])
    else:
        cursor.execute("DELETE FROM audit_auditevent WHERE sequence > %s", [EVENTS - d["count"]])
    if d["rechain"]:
        rechain(cursor)
        hide_checkpoints(cursor, d["hide_checkpoints"])


def checkpoint_attack(cursor: CursorWrapper, attack: Attack) -> None:
    d = attack.details
    rows = list(AuditCheckpoint.objects.order_by("period_end"))
    row = rows[d["index"]]
    if attack.kind == "edit":
        old = getattr(row, d["field"])
        new = old + d["value"] if d["field"] == "period_end" else d["value"]
        assume(new != old)
        assume(d["field"] != "period_end" or new not in {other.period_end for other in rows})
        update(AuditCheckpoint.objects.filter(pk=row.pk), **{d["field"]: new})
    elif attack.kind == "delete":
        cursor.execute("DELETE FROM audit_auditcheckpoint WHERE id = %s", [row.pk])
    elif attack.kind == "insert":
        copy = {field.name: getattr(rows[-1], field.name) for field in AuditCheckpoint._meta.concrete_fields}
        copy.pop("id")
        copy["period_end"] += timedelta(hours=d["hours"])
        AuditCheckpoint(**copy).save()
    elif attack.kind == "reorder":
        other = rows[(d["index"] + 1) % len(rows)]
        ends = row.period_end, other.period_end
        update(AuditCheckpoint.objects.filter(pk=row.pk), period_end=ends[0] - timedelta(days=365))
        update(AuditCheckpoint.objects.filter(pk=other.pk), period_end=ends[0])
        update(AuditCheckpoint.objects.filter(pk=row.pk), period_end=ends[1])
    else:
        hide_checkpoints(cursor, d["count"])


def head_attack(cursor: CursorWrapper, attack: Attack) -> None:
    d = attack.details
    if d["field"] == "row":
        cursor.execute("DELETE FROM audit_auditchainhead")
        return
    assume(getattr(AuditChainHead.objects.get(), d["field"]) != d["value"])
    cursor.execute(f"UPDATE audit_auditchainhead SET {d['field']} = %s", [d["value"]])  # noqa: S608


def anchor_attack(directory: Path, attack: Attack) -> None:
    d = attack.details
    paths = sorted(directory.iterdir())
    path = paths[d["index"]]
    path.chmod(0o644)
    if attack.kind == "edit":
        document = json.loads(path.read_bytes())
        if d["field"] == "garbage":
            path.write_bytes(str(d["value"]).encode())
            return
        where = document if d["field"] in ("signature", "algorithm") else document["checkpoint"]
        assume(where[d["field"]] != d["value"])
        where[d["field"]] = d["value"]
        path.write_bytes(canonical(document))
    elif attack.kind == "delete":
        path.unlink()
    elif attack.kind == "insert":
        document = json.loads(paths[-1].read_bytes())
        end = datetime.strptime(document["checkpoint"]["period_end"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
        end += timedelta(hours=1)
        document["checkpoint"]["period_end"] = end.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        (directory / f"checkpoint-{end:%Y%m%dT%H%M}Z.json").write_bytes(canonical(document))
    elif attack.kind == "reorder":
        other = paths[(d["index"] + 1) % len(paths)]
        other.chmod(0o644)
        first, second = path.read_bytes(), other.read_bytes()
        path.write_bytes(second)
        other.write_bytes(first)
    else:
        for doomed in paths[-d["count"] :]:
            doomed.unlink()


def test_any_single_tampering_fails_verification(empty_trail, anchor_dir, tmp_path):
    for hour, minute in TIMES:
        with time_machine.travel(datetime(2026, 11, 2, hour, minute, tzinfo=UTC), tick=False):
            audit_event_record(action="test.change", actor_repr="system", changes={"at": f"{hour}:{minute}"})
    with time_machine.travel(datetime(2026, 11, 2, 13, 5, tzinfo=UTC), tick=False):
        audit_checkpoints_write()
    assert audit_chain_verify(now=NOW).problem is None
    assert AuditCheckpoint.objects.count() == len(list(anchor_dir.iterdir())) == 3

    @given(attacks())
    @settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    def check(attack: Attack) -> None:
        copy = tmp_path / "copy"
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(anchor_dir, copy)
        with transaction.atomic():
            with tampering() as cursor:
                if attack.target == "event":
                    event_attack(cursor, attack)
                elif attack.target == "checkpoint":
                    checkpoint_attack(cursor, attack)
                elif attack.target == "head":
                    head_attack(cursor, attack)
                else:
                    anchor_attack(copy, attack)
            report = audit_chain_verify(now=NOW, anchor_dir=copy)
            transaction.set_rollback(True)
        assert report.problem is not None, f"not detected: {attack}"

    check()
