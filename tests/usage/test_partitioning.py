"""The ledger partitioned by month on PostgreSQL (usage migration 0009, usage.partitions): rows land in
their month, partitions are created ahead, the ledger stays append-only and each call is written once
across partitions, and a closed month leaves the ledger only as a verified, signed evidence package."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import time_machine
from django.core.management import call_command
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audit import evidence
from audit.chain import public_key_pem
from audit.evidence_verify import verify_package
from audit.models import AuditEvent
from usage import tasks
from usage.checks import ledger_default_partition_check
from usage.models import UsageRecord
from usage.partitions import (
    DEFAULT_PARTITION,
    LedgerArchiveRefused,
    ledger_month_archive,
    ledger_partitioned,
    ledger_partitions,
    ledger_partitions_create,
    partition_name,
)
from usage.services import Cap
from usage.settlement import call_settle, spend_reserve

pytestmark = pytest.mark.django_db

CAP = Cap(scope="provider_key", scope_id=7, period="month", limit_usd=Decimal(1000), label="key")
ROW = {"request_id": "r", "environment": "production", "endpoint": "run", "requested_model": "m", "model": "m",
       "outcome": "ok"}  # fmt: skip


def postgresql_only() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("the ledger is partitioned on PostgreSQL only; SQLite keeps a plain table")


def partition_of(record: UsageRecord) -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tableoid::regclass::text FROM usage_usagerecord WHERE id = %s AND created_at = %s",
            [record.pk, record.created_at],
        )
        return str(cursor.fetchone()[0])


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def write(created_at: datetime, **fields: Any) -> UsageRecord:
    record = call_settle(record={**ROW, "created_at": created_at, **fields}).record
    assert record is not None
    return record


# --- the migration --------------------------------------------------------------------------------------------


def _migrate(target: tuple[str, str]) -> Any:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate([target])
    return MigrationExecutor(connection).loader.project_state([target]).apps


@pytest.mark.django_db(transaction=True)
def test_the_migration_moves_a_ledger_of_several_months_into_month_partitions():
    postgresql_only()
    old_apps = _migrate(("usage", "0009_playground"))
    assert not ledger_partitioned()
    old = old_apps.get_model("usage", "UsageRecord")
    dates = [at(2024, 11, 30, 23, 59, 59), at(2024, 12, 1), at(2025, 2, 14, 12), at(2025, 2, 28, 23)]
    written = [old.objects.create(**ROW, created_at=when, call_id=f"old-{n}") for n, when in enumerate(dates)]

    _migrate(("usage", "0010_ledger_partitioned"))

    assert ledger_partitioned()
    names = {part.name for part in ledger_partitions()}
    assert {"usage_usagerecord_p2024_11", "usage_usagerecord_p2024_12", "usage_usagerecord_p2025_02"} <= names
    assert DEFAULT_PARTITION in names
    rows = {row.pk: row for row in UsageRecord.objects.all()}
    assert sorted(rows) == sorted(row.pk for row in written)
    assert [partition_of(rows[row.pk]) for row in written] == [
        "usage_usagerecord_p2024_11", "usage_usagerecord_p2024_12", "usage_usagerecord_p2025_02",
        "usage_usagerecord_p2025_02",
    ]  # fmt: skip
    # The id sequence carries on; a moved row's call id still refuses a second row.
    fresh = write(datetime.now(tz=UTC), call_id="new-0")
    assert fresh.pk > max(rows)
    assert not call_settle(record={**ROW, "call_id": "old-2"}).settled
    assert UsageRecord.objects.filter(call_id="old-2").count() == 1


# --- partitions ahead, and where rows go ---------------------------------------------------------------------


def test_beats_task_creates_this_month_and_the_next_three_once():
    with time_machine.travel(at(2031, 11, 20), tick=False):
        tasks.ledger_partitions_create()
        first = ledger_partitions()
        tasks.ledger_partitions_create()
        assert ledger_partitions() == first  # idempotent

    if connection.vendor != "postgresql":
        assert first == []  # SQLite: one plain table, nothing to create
        return
    months = {part.month for part in first}
    assert {date(2031, 11, 1), date(2031, 12, 1), date(2032, 1, 1), date(2032, 2, 1)} <= months
    assert date(2032, 3, 1) not in months


def test_a_month_without_a_partition_lands_in_the_default_one_and_check_warns():
    postgresql_only()
    assert ledger_default_partition_check(databases=["default"]) == []

    stray = write(at(2041, 6, 3))

    assert partition_of(stray) == DEFAULT_PARTITION
    warnings = ledger_default_partition_check(databases=["default"])
    assert [warning.id for warning in warnings] == ["usage.W001"]
    # Its month can no longer be created (its rows would have to move): skipped, not an error.
    assert partition_name(date(2041, 6, 1)) not in ledger_partitions_create(now=at(2041, 6, 1), ahead=1)
    assert partition_name(date(2041, 7, 1)) in ledger_partitions_create(now=at(2041, 6, 1), ahead=1)


# Hypothesis takes naive bounds and attaches the zone itself.
FIRST, LAST = datetime(2033, 1, 1), datetime(2034, 2, 28)  # noqa: DTZ001


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(moments=st.lists(st.datetimes(min_value=FIRST, max_value=LAST, timezones=st.just(UTC)), min_size=1, max_size=6))
def test_a_row_lands_in_the_partition_whose_bounds_hold_its_time(moments):
    postgresql_only()
    with transaction.atomic():
        ledger_partitions_create(now=at(2033, 1, 1), ahead=11)  # 2033 has partitions, 2034 does not
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
                "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'usage_usagerecord'::regclass"
            )
            bounds = dict(cursor.fetchall())
        for moment in moments:
            record = write(moment)
            name = partition_of(record)
            if moment.year == 2033:
                assert name == partition_name(moment.date())
                low, high = _bounds(bounds[name])
                assert low <= moment < high
            else:
                assert name == DEFAULT_PARTITION
        transaction.set_rollback(True)


def _bounds(expression: str) -> tuple[datetime, datetime]:
    # FOR VALUES FROM ('2033-03-01 00:00:00+00') TO ('2033-04-01 00:00:00+00')
    low, high = (part.split("'")[1] for part in expression.split(" TO "))
    return datetime.fromisoformat(low).astimezone(UTC), datetime.fromisoformat(high).astimezone(UTC)


# --- append-only, and each call once -------------------------------------------------------------------------


@pytest.mark.parametrize("statement", ["UPDATE {table} SET cost_usd = 0", "DELETE FROM {table}"])
def test_every_partition_refuses_update_and_delete(statement):
    postgresql_only()
    ledger_partitions_create(now=at(2035, 4, 1), ahead=0)  # made after the trigger was declared
    record = write(at(2035, 4, 9))
    table = partition_of(record)
    assert table == "usage_usagerecord_p2035_04"
    assert partition_of(write(at(2099, 1, 1))) == DEFAULT_PARTITION

    for target in (table, "usage_usagerecord", DEFAULT_PARTITION):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(statement.format(table=target))
    assert UsageRecord.objects.count() == 2
    assert UsageRecord.objects.get(pk=record.pk).cost_usd == record.cost_usd


def test_a_call_settled_again_after_the_month_turned_is_written_once():
    ledger_partitions_create(now=at(2036, 1, 1), ahead=1)
    with time_machine.travel(at(2036, 1, 31, 23, 59, 59), tick=False):
        assert call_settle(record={**ROW, "call_id": "run_midnight"}).settled
    with time_machine.travel(at(2036, 2, 1, 0, 0, 1), tick=False):
        again = call_settle(record={**ROW, "call_id": "run_midnight"})

    assert not again.settled
    assert list(UsageRecord.objects.values_list("call_id", "created_at")) == [
        ("run_midnight", at(2036, 1, 31, 23, 59, 59))
    ]


def test_a_call_id_claimed_by_a_second_reservation_next_month_is_refused():
    ledger_partitions_create(now=at(2036, 1, 1), ahead=1)
    with time_machine.travel(at(2036, 1, 31, 23, 59, 59), tick=False):
        first = spend_reserve(request_id="a", caps=[CAP], amount=Decimal(2))
        call_settle(record={**ROW, "call_id": "run_same"}, reservation=first, spent=Decimal(1))
    with time_machine.travel(at(2036, 2, 1, 0, 0, 1), tick=False):
        second = spend_reserve(request_id="b", caps=[CAP], amount=Decimal(2))
        with pytest.raises(IntegrityError):
            call_settle(record={**ROW, "call_id": "run_same"}, reservation=second, spent=Decimal(1))

    assert UsageRecord.objects.count() == 1


# --- retention: archive, verify, detach ---------------------------------------------------------------------


@pytest.fixture
def two_months() -> dict[str, list[UsageRecord]]:
    postgresql_only()
    ledger_partitions_create(now=at(2025, 3, 1), ahead=1)
    return {
        "march": [write(at(2025, 3, day), call_id=f"march-{day}") for day in (1, 15, 31)],
        "april": [write(at(2025, 4, 1, 0, 0, 0)), write(at(2025, 4, 20))],
    }


def test_a_closed_month_is_archived_as_a_verified_package_then_detached(two_months, tmp_path):
    archive = ledger_month_archive(month=date(2025, 3, 1), out_dir=tmp_path, now=at(2025, 6, 2))

    problems, manifest = verify_package(archive.path, expected_public_key=public_key_pem())
    assert problems == []
    assert manifest["period"] == {"from": "2025-03-01", "to": "2025-03-31", "timezone": "UTC"}
    assert archive.rows == 3 == next(f["rows"] for f in manifest["files"] if f["name"] == "usage_ledger.jsonl")
    assert archive.sha256 == hashlib.sha256(archive.path.read_bytes()).hexdigest()
    # The month is out of the ledger; April is untouched.
    assert "usage_usagerecord_p2025_03" not in {part.name for part in ledger_partitions()}
    assert sorted(UsageRecord.objects.values_list("id", flat=True)) == sorted(r.pk for r in two_months["april"])
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM usage_usagerecord_p2025_03")  # detached, not dropped
        assert cursor.fetchone()[0] == 3
    event = AuditEvent.objects.get(action="ledger.archive")
    assert event.changes == {"month": "2025-03", "package": "usage_ledger_2025-03.zip", "sha256": archive.sha256,
                             "rows": 3, "detached": True, "dropped": False}  # fmt: skip
    # Archived once: there is no partition to archive a second time.
    with pytest.raises(LedgerArchiveRefused, match="no partition"):
        ledger_month_archive(month=date(2025, 3, 1), out_dir=tmp_path / "again", now=at(2025, 6, 2))


def test_the_command_archives_the_months_past_the_retention_and_drops_them(two_months, tmp_path, settings):
    settings.TOLLGATE_LEDGER_RETENTION_MONTHS = 2
    with time_machine.travel(at(2025, 6, 2), tick=False):
        call_command("ledger_archive", "--out", str(tmp_path), "--drop")

    assert (tmp_path / "usage_ledger_2025-03.zip").exists()
    assert not (tmp_path / "usage_ledger_2025-04.zip").exists()  # April is within two months of June
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('usage_usagerecord_p2025_03')")
        assert cursor.fetchone()[0] is None
    assert UsageRecord.objects.count() == 2


def test_an_archive_whose_export_fails_detaches_nothing(two_months, tmp_path, monkeypatch):
    ledger_type = evidence.evidence_types()["usage_ledger"]

    def rows_then_a_full_disk(period: evidence.Period) -> Any:
        yield from list(ledger_type.rows(period))[:1]
        raise OSError("No space left on device")

    monkeypatch.setitem(evidence._registry, "usage_ledger", replace(ledger_type, rows=rows_then_a_full_disk))

    with pytest.raises(OSError, match="No space"):
        ledger_month_archive(month=date(2025, 3, 1), out_dir=tmp_path, now=at(2025, 6, 2))

    assert "usage_usagerecord_p2025_03" in {part.name for part in ledger_partitions()}
    assert UsageRecord.objects.count() == 5
    assert list(tmp_path.iterdir()) == []
    assert not AuditEvent.objects.filter(action="ledger.archive").exists()


def test_a_package_that_does_not_verify_detaches_nothing(two_months, tmp_path, monkeypatch):
    monkeypatch.setattr("usage.partitions.verify_package", lambda path, **kwargs: (["usage_ledger.csv: 2 rows"], {}))

    with pytest.raises(LedgerArchiveRefused, match="does not verify"):
        ledger_month_archive(month=date(2025, 3, 1), out_dir=tmp_path, now=at(2025, 6, 2))

    assert UsageRecord.objects.count() == 5
    assert list(tmp_path.iterdir()) == []


def test_an_open_month_or_one_within_the_retention_is_refused(two_months, tmp_path, settings):
    with pytest.raises(LedgerArchiveRefused, match="not over"):
        ledger_month_archive(month=date(2025, 4, 1), out_dir=tmp_path, now=at(2025, 4, 30))
    settings.TOLLGATE_LEDGER_RETENTION_MONTHS = 6
    with pytest.raises(LedgerArchiveRefused, match="within TOLLGATE_LEDGER_RETENTION_MONTHS"):
        ledger_month_archive(month=date(2025, 3, 1), out_dir=tmp_path, now=at(2025, 6, 2))
    assert UsageRecord.objects.count() == 5


def test_sqlite_has_no_month_to_archive(tmp_path):
    if connection.vendor == "postgresql":
        assert ledger_partitioned()
        return
    with pytest.raises(LedgerArchiveRefused, match="not partitioned"):
        ledger_month_archive(month=date(2025, 3, 1), out_dir=tmp_path, now=at(2025, 6, 2))
    assert ledger_default_partition_check(databases=["default"]) == []


def test_rows_dated_a_month_ahead_are_not_lost(tmp_path):
    """The ledger accepts any time: a row beyond the partitions made is kept (in the default partition)."""
    record = write(datetime.now(tz=UTC) + timedelta(days=3650))
    assert UsageRecord.objects.get() == record


def test_the_ledgers_admin_list_counts_from_the_partitions_estimates(monkeypatch):
    postgresql_only()
    from django.db.models.query import QuerySet
    from django.test.utils import CaptureQueriesContext

    from usage.admin import EstimatedCountPaginator

    ledger_partitions_create(now=at(2037, 1, 1), ahead=1)
    for moment in (at(2037, 1, 5), at(2037, 1, 6), at(2037, 2, 5)):
        write(moment)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE usage_usagerecord")
    monkeypatch.setattr(EstimatedCountPaginator, "estimate_above", 2)
    ledger: QuerySet[UsageRecord] = UsageRecord.objects.all()

    with CaptureQueriesContext(connection) as queries:
        assert EstimatedCountPaginator(ledger, 100).count == 3
    assert not any("COUNT(" in query["sql"].upper() for query in queries.captured_queries)
