"""The ledger's monthly partitions on PostgreSQL (usage migration 0009; docs/capacity.md): created ahead by
beat, and retired a whole month at a time by archiving it as a signed evidence package first.

SQLite keeps the ledger as one plain table: everything here is a no-op there (no partitions, nothing to
create or archive).

Detaching a month takes the ledger's owner: the application's role cannot, by design (docs/operations.md,
Database roles), so `ledger_archive` is run as the owner, by an operator or a timer of theirs, and never by
beat. Creating a partition goes through `usage_ledger_partition_create`, a function that runs with its
owner's rights and can do nothing but add a month.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from audit.chain import public_key_pem
from audit.evidence import Period, evidence_export
from audit.evidence_verify import verify_package
from audit.services import audit_event_record

logger = logging.getLogger(__name__)

TABLE = "usage_usagerecord"
DEFAULT_PARTITION = "usage_usagerecord_default"
ARCHIVE_ACTOR = "ledger_archive"


class LedgerArchiveRefused(Exception):
    """A month that cannot be archived (not partitioned, not closed, within the retention, not found), or
    an archive that did not verify: nothing was detached."""


@dataclass(frozen=True)
class LedgerPartition:
    """One partition: a month's (`month` its first day) or the default one (`month` None)."""

    name: str
    month: date | None


@dataclass(frozen=True)
class LedgerArchive:
    """A month archived: its package, the package's SHA-256 and how many ledger rows it holds."""

    month: date
    path: Path
    sha256: str
    rows: int
    dropped: bool


def month_start(day: date) -> date:
    return day.replace(day=1)


def months_after(month: date, count: int) -> date:
    index = month.year * 12 + month.month - 1 + count
    return date(index // 12, index % 12 + 1, 1)


def partition_name(month: date) -> str:
    return f"{TABLE}_p{month:%Y_%m}"


def ledger_partitioned() -> bool:
    """Whether the ledger is a partitioned table here (PostgreSQL after migration 0009)."""
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT EXISTS (SELECT FROM pg_partitioned_table WHERE partrelid = to_regclass(%s))", [TABLE])
        return bool(cursor.fetchone()[0])


def ledger_partitions() -> list[LedgerPartition]:
    """The ledger's partitions, months in order, then the default one. Empty where it is not partitioned."""
    if not ledger_partitioned():
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT'
            FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
            WHERE i.inhparent = %s::regclass ORDER BY c.relname
            """,
            [TABLE],
        )
        rows = cursor.fetchall()
    prefix = f"{TABLE}_p"
    months = [
        LedgerPartition(name, date(int(name[len(prefix) :][:4]), int(name[-2:]), 1))
        for name, default in rows
        if not default and name.startswith(prefix)
    ]
    return [*months, *(LedgerPartition(name, None) for name, default in rows if default)]


def ledger_partitions_create(*, now: datetime | None = None, ahead: int | None = None) -> list[str]:
    """Make sure the current month's partition and the next `ahead` months' exist (default
    TOLLGATE_LEDGER_PARTITIONS_AHEAD); idempotent. Returns the partitions' names. A month whose rows sit in
    the default partition already cannot be created (they would have to move): it is skipped and logged,
    and `ledger_default_rows` reports them."""
    if not ledger_partitioned():
        return []
    ahead = settings.TOLLGATE_LEDGER_PARTITIONS_AHEAD if ahead is None else ahead
    current = month_start((now or timezone.now()).astimezone(UTC).date())
    names = []
    with connection.cursor() as cursor:
        for offset in range(ahead + 1):
            month = months_after(current, offset)
            cursor.execute("SELECT usage_ledger_partition_create(%s)", [month])
            name = cursor.fetchone()[0]
            if name is None:
                logger.error("Ledger partition for %s not created: the default partition holds rows of it", month)
                continue
            names.append(name)
    return names


def ledger_default_rows(*, limit: int = 10_000) -> int:
    """Rows in the default partition (counted up to `limit`): rows dated in a month that had no partition.
    0 where the ledger is not partitioned."""
    if not ledger_partitioned():
        return 0
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM (SELECT FROM {DEFAULT_PARTITION} LIMIT %s) AS rows", [limit])  # noqa: S608
        return int(cursor.fetchone()[0])


def ledger_months_due(*, now: datetime | None = None) -> list[date]:
    """Months past TOLLGATE_LEDGER_RETENTION_MONTHS whose partition is still attached (none when it is 0)."""
    keep = settings.TOLLGATE_LEDGER_RETENTION_MONTHS
    if not keep:
        return []
    cutoff = months_after(month_start((now or timezone.now()).astimezone(UTC).date()), -keep)
    return [part.month for part in ledger_partitions() if part.month is not None and part.month < cutoff]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def ledger_month_archive(
    *, month: date, out_dir: Path, drop: bool = False, actor_repr: str = ARCHIVE_ACTOR, now: datetime | None = None
) -> LedgerArchive:
    """Archive one closed month of the ledger: write its `usage_ledger` evidence package to `out_dir`,
    verify it against this installation's signing key, then — only then — detach the month's partition
    (and drop it, with `drop`), recording a `ledger.archive` audit event with the package's SHA-256 and row
    count. Raises LedgerArchiveRefused (nothing detached) when the month cannot or should not go. Run as the
    ledger's owner: the application's role may not detach."""
    month = month_start(month)
    current = month_start((now or timezone.now()).astimezone(UTC).date())
    if not ledger_partitioned():
        raise LedgerArchiveRefused("The ledger is not partitioned here (PostgreSQL only): there is no month to detach.")
    if month >= current:
        raise LedgerArchiveRefused(f"{month:%Y-%m} is not over yet: only a closed month is archived.")
    keep = settings.TOLLGATE_LEDGER_RETENTION_MONTHS
    if keep and month >= months_after(current, -keep):
        raise LedgerArchiveRefused(
            f"{month:%Y-%m} is within TOLLGATE_LEDGER_RETENTION_MONTHS ({keep}): it is kept in the ledger."
        )
    name = partition_name(month)
    if name not in {part.name for part in ledger_partitions()}:
        raise LedgerArchiveRefused(f"{month:%Y-%m} has no partition attached to the ledger (archived already?).")
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"usage_ledger_{month:%Y-%m}.zip"
    if path.exists():
        raise LedgerArchiveRefused(f"{path} exists already: an archive is never overwritten.")
    period = Period(month, months_after(month, 1) - timedelta(days=1))
    try:
        with path.open("xb") as out:
            evidence_export(type_name="usage_ledger", period=period, out=out, actor_repr=actor_repr)
        problems, manifest = verify_package(path, expected_public_key=public_key_pem())
    except Exception:
        path.unlink(missing_ok=True)
        raise
    if problems:
        path.unlink()
        raise LedgerArchiveRefused(f"The package of {month:%Y-%m} does not verify: {'; '.join(problems)}")
    rows = next(entry["rows"] for entry in manifest["files"] if entry["name"] == "usage_ledger.jsonl")
    sha256 = _sha256(path)
    with transaction.atomic(), connection.cursor() as cursor:
        # The month is closed, so nothing writes to it; the lock makes sure, while its rows are counted.
        cursor.execute(f"LOCK TABLE {name} IN SHARE MODE")
        # Deferred foreign-key checks of rows written in this transaction would block the DROP.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(f"SELECT count(*) FROM {name}")  # noqa: S608  (a name built from a date)
        present = cursor.fetchone()[0]
        if present != rows:
            raise LedgerArchiveRefused(
                f"{name} holds {present} rows, the package {rows}: nothing detached. Archive it again."
            )
        cursor.execute(f"ALTER TABLE {TABLE} DETACH PARTITION {name}")
        if drop:
            cursor.execute(f"DROP TABLE {name}")
        audit_event_record(
            action="ledger.archive",
            actor_repr=actor_repr,
            object_type="ledger_partition",
            object_id=name,
            object_repr=f"usage ledger {month:%Y-%m}",
            changes={
                "month": f"{month:%Y-%m}",
                "package": path.name,
                "sha256": sha256,
                "rows": rows,
                "detached": True,
                "dropped": drop,
            },
        )
    logger.info("Ledger %s archived to %s (%d rows) and detached", f"{month:%Y-%m}", path, rows)
    return LedgerArchive(month=month, path=path, sha256=sha256, rows=rows, dropped=drop)
