"""Evidence packages (docs/contract.md §8): what an auditor downloads, and can check offline.

A package is a ZIP holding the rows of one evidence type for a period as CSV and as JSON Lines,
`manifest.json` (type, period, filters, generated at/by, each file's SHA-256 and row count, the audit
chain head), `manifest.sig` (Ed25519 over manifest.json), `public_key.pem` and a README on verifying it.

Each app contributes its types with `register()` (from its AppConfig.ready), so the audit app depends
on none of them. Rows are streamed from the database into the archive: memory stays flat however
large the export.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import tempfile
import zipfile
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import IO, Any

from django.contrib.auth.models import AnonymousUser, User
from django.db import connection, transaction
from django.utils import timezone

from audit.chain import HASHED_FIELDS, canonical, public_key_pem, sign
from audit.models import AuditChainHead, AuditEvent
from audit.services import audit_event_record

FORMAT_VERSION = 1


@dataclass(frozen=True)
class Period:
    """Whole UTC days, both inclusive."""

    first_day: date
    last_day: date

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first_day, time.min, tzinfo=UTC)

    @property
    def end(self) -> datetime:
        """Exclusive."""
        return datetime.combine(self.last_day + timedelta(days=1), time.min, tzinfo=UTC)


@dataclass(frozen=True)
class EvidenceType:
    name: str
    title: str
    description: str
    columns: tuple[str, ...]
    # Each row a dict by column name (its values formatted here), or a tuple in column order whose values
    # are written as they are (the rows function formats them: the fast path for millions of rows).
    rows: Callable[[Period], Iterator[dict[str, Any]] | Iterator[tuple[Any, ...]]]


_registry: dict[str, EvidenceType] = {}


def register(evidence_type: EvidenceType) -> None:
    _registry[evidence_type.name] = evidence_type


def evidence_types() -> dict[str, EvidenceType]:
    return dict(sorted(_registry.items()))


_cell_encoder = json.JSONEncoder(sort_keys=True, default=str)
_row_encoder = json.JSONEncoder(default=str)


def _json_text(value: Any) -> str:
    return _cell_encoder.encode(value)


def utc_text(value: datetime) -> str:
    """A time as the files carry it: UTC, ISO 8601, always with microseconds."""
    return value.astimezone(UTC).isoformat(timespec="microseconds")


# How values are written: times in UTC ISO 8601, lists and dicts as JSON, the rest as they are. Looked up
# by exact type (one dictionary look-up a value: exports run to millions of rows).
_CONVERTERS: dict[type, Callable[[Any], Any]] = {datetime: utc_text, date: date.isoformat, list: _json_text,
                                                 dict: _json_text}  # fmt: skip


# CSV cells a spreadsheet would evaluate (a formula, "CSV injection"): those starting with one of these,
# full-width forms included, get a leading "'"; so does a cell that already starts with "'", so that the
# rule reverses exactly (strip one leading "'"). The JSON Lines file keeps every value exact.
FORMULA_START = frozenset("=+-@\t\r\uff1d\uff0b\uff0d\uff20'")


def csv_cell(value: Any) -> Any:
    """A value as the CSV file carries it (see FORMULA_START)."""
    return "'" + value if value.__class__ is str and value[:1] in FORMULA_START else value


class _Outbox(io.RawIOBase):
    """Where the archive is written: bytes wait here until the exporter hands them on. Not seekable, so
    zipfile streams (sizes in data descriptors)."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.parts.append(bytes(data))
        return len(self.parts[-1])

    def take(self) -> bytes:
        taken, self.parts = b"".join(self.parts), []
        return taken


class _Hashing(io.RawIOBase):
    """A binary sink that hashes and counts what passes into the archive member below it."""

    def __init__(self, sink: IO[bytes]) -> None:
        self.sink, self.digest, self.size = sink, hashlib.sha256(), 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self.sink.write(chunk)
        self.digest.update(chunk)
        self.size += len(chunk)
        return len(chunk)


BATCH_ROWS = 2000
COPY_CHUNK = 1 << 20


def _write_files(
    archive: zipfile.ZipFile, evidence_type: EvidenceType, period: Period
) -> Generator[None, None, list[dict[str, Any]]]:
    """One pass over the rows: CSV straight into the archive, JSON Lines into a temporary file that is
    then copied in. Pauses (yields) after each batch so the caller can pass the bytes on; returns each
    file's manifest entry (name, SHA-256, size, rows)."""
    name, columns = evidence_type.name, evidence_type.columns
    converters, formula_start = _CONVERTERS.get, FORMULA_START
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\r\n")
    writer.writerow(columns)
    json_lines: list[str] = []
    rows = 0
    with tempfile.TemporaryFile() as spool:
        jsonl_sink = _Hashing(spool)
        with archive.open(f"{name}.csv", "w", force_zip64=True) as member:
            csv_sink = _Hashing(member)

            def flush() -> None:
                csv_sink.write(text.getvalue().encode())
                text.seek(0)
                text.truncate()
                jsonl_sink.write("".join(json_lines).encode())
                json_lines.clear()

            for row in evidence_type.rows(period):
                values: Sequence[Any]
                if isinstance(row, tuple):
                    values = row
                else:
                    values = [
                        convert(value) if (convert := converters(type(value))) is not None else value
                        for value in map(row.get, columns)
                    ]
                # Inlined csv_cell(): one comparison a cell, millions of rows.
                writer.writerow([("'" + v) if v.__class__ is str and v[:1] in formula_start else v for v in values])
                json_lines.append(_row_encoder.encode(dict(zip(columns, values, strict=True))) + "\n")
                rows += 1
                if rows % BATCH_ROWS == 0:
                    flush()
                    yield
            flush()
        spool.seek(0)
        with archive.open(f"{name}.jsonl", "w", force_zip64=True) as jsonl_member:
            while chunk := spool.read(COPY_CHUNK):
                jsonl_member.write(chunk)
                yield
    return [
        {"name": f"{name}.csv", "sha256": csv_sink.digest.hexdigest(), "bytes": csv_sink.size, "rows": rows,
         "header": True},
        {"name": f"{name}.jsonl", "sha256": jsonl_sink.digest.hexdigest(), "bytes": jsonl_sink.size, "rows": rows,
         "header": False},
    ]  # fmt: skip


def _snapshot(*, outermost: bool) -> None:
    """Both files and the chain head from one consistent view of the database (PostgreSQL; a transaction
    that is already open keeps its own isolation)."""
    if outermost and connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")


README = """Tollgate evidence package: {title}
{description}

Period: {first_day} to {last_day} (UTC, both days included). Generated {generated_at} by {generated_by}.

Files
  {name}.csv     the rows, with a header line, for spreadsheets (see below)
  {name}.jsonl   the same rows, one JSON object a line, every value exact
  manifest.json  what this package holds: each file's SHA-256 and row count, the audit chain head
  manifest.sig   Ed25519 signature (base64) of manifest.json
  public_key.pem the key that signed it; compare its SHA-256 with the one Tollgate publishes

CSV cells
  A text cell that a spreadsheet would evaluate as a formula, one starting with = + - @ a tab or a
  carriage return (or the full-width forms of = + - @), is written with a leading ' so that it is shown
  as text; a cell already starting with ' gets one more. To recover the exact value, remove one leading
  ' where there is one. Recompute hashes (the audit log's previous_hash and hash) from {name}.jsonl,
  which holds every value exactly.

Verifying (no database needed)
  python manage.py verify_export THIS.zip --public-key tollgate_public_key.pem
  python manage.py verify_export THIS.zip --fingerprint SHA256_OF_THE_KEY
or without Django: python -m audit.evidence_verify THIS.zip --public-key tollgate_public_key.pem
Either checks manifest.sig over manifest.json with the key you expect (Ed25519), then each file's
SHA-256 and row count against manifest.json. The public_key.pem inside the package only proves that
the package is intact, not who made it: compare it with the key Tollgate publishes.
"""


def evidence_chunks(
    *,
    type_name: str,
    period: Period,
    actor: User | AnonymousUser | None = None,
    actor_repr: str | None = None,
    manifest_out: dict[str, Any] | None = None,
) -> Iterator[bytes]:
    """The package as a stream of bytes (for a file or an HTTP response), in constant memory. The export
    is itself an audit event, recorded first, so the manifest's chain head includes it. `manifest_out`
    receives the manifest once the stream is done."""
    evidence_type = _registry[type_name]
    with transaction.atomic():
        event = audit_event_record(
            action="evidence.export",
            actor=actor,
            actor_repr=actor_repr,
            object_type="evidence",
            object_repr=type_name,
            changes={"type": type_name, "from": period.first_day.isoformat(), "to": period.last_day.isoformat()},
        )
    generated_at = timezone.now()
    outermost = not connection.in_atomic_block
    outbox = _Outbox()
    with (
        transaction.atomic(),
        zipfile.ZipFile(outbox, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1, allowZip64=True) as archive,
    ):
        _snapshot(outermost=outermost)
        head = AuditChainHead.objects.get(id=1)
        writing = _write_files(archive, evidence_type, period)
        while True:
            try:
                next(writing)
            except StopIteration as done:
                files = done.value
                break
            yield outbox.take()
        manifest = {
            "format": FORMAT_VERSION,
            "export_type": type_name,
            "title": evidence_type.title,
            "period": {"from": period.first_day.isoformat(), "to": period.last_day.isoformat(), "timezone": "UTC"},
            "filters": {},
            "generated_at": generated_at.astimezone(UTC).isoformat(),
            "generated_by": event.actor_repr,
            "export_audit_sequence": event.sequence,
            "audit_chain_head": {"sequence": head.last_sequence, "hash": head.last_hash},
            "files": files,
            "signature": {"algorithm": "Ed25519", "file": "manifest.sig", "public_key": "public_key.pem"},
        }
        manifest_bytes = canonical(manifest)
        archive.writestr("manifest.json", manifest_bytes)
        archive.writestr("manifest.sig", sign(manifest_bytes))
        archive.writestr("public_key.pem", public_key_pem())
        archive.writestr(
            "README.txt",
            README.format(
                title=evidence_type.title,
                description=evidence_type.description,
                first_day=period.first_day,
                last_day=period.last_day,
                generated_at=manifest["generated_at"],
                generated_by=event.actor_repr,
                name=type_name,
            ),
        )
    yield outbox.take()
    if manifest_out is not None:
        manifest_out.update(manifest)


def evidence_export(
    *,
    type_name: str,
    period: Period,
    out: IO[bytes],
    actor: User | AnonymousUser | None = None,
    actor_repr: str | None = None,
) -> dict[str, Any]:
    """Write the package to `out`; returns its manifest."""
    manifest: dict[str, Any] = {}
    for chunk in evidence_chunks(
        type_name=type_name, period=period, actor=actor, actor_repr=actor_repr, manifest_out=manifest
    ):
        out.write(chunk)
    return manifest


def _audit_log_rows(period: Period) -> Iterator[dict[str, Any]]:
    events = AuditEvent.objects.filter(occurred_at__gte=period.start, occurred_at__lt=period.end)
    yield from events.order_by("sequence").values(*AUDIT_LOG_COLUMNS).iterator(chunk_size=2000)


AUDIT_LOG_COLUMNS = (*HASHED_FIELDS, "hash")

register(
    EvidenceType(
        name="audit_log",
        title="Audit log",
        description="Every audit event of the period in sequence order, with the hash chain "
        "(previous_hash, hash) so that the sample can be checked against the chain.",
        columns=AUDIT_LOG_COLUMNS,
        rows=_audit_log_rows,
    )
)
