"""manage.py ledger_archive [--month YYYY-MM] --out DIR [--drop]: archive closed months of the ledger."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from usage.partitions import LedgerArchiveRefused, ledger_month_archive, ledger_months_due


def _month(text: str) -> date:
    return date.fromisoformat(f"{text}-01")


class Command(BaseCommand):
    help = (
        "Archive a closed month of the usage ledger (PostgreSQL): write its signed evidence package to --out, "
        "verify it, then detach the month's partition (--drop: and drop it). Without --month, every month past "
        "TOLLGATE_LEDGER_RETENTION_MONTHS. Run as the database role that owns the ledger."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--month", type=_month, help="YYYY-MM; default: every month past the retention")
        parser.add_argument("--out", required=True, type=Path, help="directory the packages are written to")
        parser.add_argument("--drop", action="store_true", help="drop each partition once detached")
        parser.add_argument("--as", dest="actor", default="ledger_archive", help="who ran it, for the audit event")

    def handle(self, *args: Any, **options: Any) -> None:
        months = [options["month"]] if options["month"] else ledger_months_due()
        if not months:
            self.stdout.write("No month to archive (TOLLGATE_LEDGER_RETENTION_MONTHS is 0, or none is past it).")
            return
        for month in months:
            try:
                archive = ledger_month_archive(
                    month=month,
                    out_dir=options["out"],
                    drop=options["drop"],
                    actor_repr=f"cli:{options['actor']}"[:200],
                )
            except LedgerArchiveRefused as exc:
                raise CommandError(str(exc)) from None
            self.stdout.write(
                f"{archive.month:%Y-%m}: {archive.rows} rows archived to {archive.path} (SHA-256 {archive.sha256}), "
                f"partition {'dropped' if archive.dropped else 'detached'}."
            )
