"""manage.py export_evidence --type T --from D --to D --out FILE.zip: write an evidence package."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.evidence import Period, evidence_export, evidence_types


class Command(BaseCommand):
    help = "Write an evidence package (docs/contract.md §8): CSV, JSON Lines, a signed manifest and the public key."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--type", required=True, choices=sorted(evidence_types()))
        parser.add_argument("--from", dest="first_day", required=True, type=date.fromisoformat, help="YYYY-MM-DD")
        parser.add_argument("--to", dest="last_day", required=True, type=date.fromisoformat, help="YYYY-MM-DD")
        parser.add_argument("--out", required=True, type=Path)
        parser.add_argument("--as", dest="actor", default="cli", help="who asked for it, for the audit event")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["last_day"] < options["first_day"]:
            raise CommandError("--to is before --from.")
        period = Period(options["first_day"], options["last_day"])
        with options["out"].open("wb") as out:
            manifest = evidence_export(
                type_name=options["type"], period=period, out=out, actor_repr=f"cli:{options['actor']}"[:200]
            )
        rows = ", ".join(f"{entry['name']} {entry['rows']} rows" for entry in manifest["files"])
        self.stdout.write(f"Wrote {options['out']}: {rows}.")
