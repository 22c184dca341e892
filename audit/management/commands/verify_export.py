"""manage.py verify_export FILE.zip: check an evidence package's hashes, row counts and signature.
Uses no database (`python -m audit.evidence_verify FILE.zip` does the same without Django)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from audit.evidence_verify import report


class Command(BaseCommand):
    help = "Check an evidence package offline: every file's SHA-256 and row count, and the manifest's signature."
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path)
        parser.add_argument("--public-key", type=Path, help="the PEM the package must be signed with")

    def handle(self, *args: Any, **options: Any) -> None:
        expected = options["public_key"].read_bytes() if options["public_key"] else None
        status = report(options["file"], expected, self.stdout, self.stderr)  # type: ignore[arg-type]
        if status:
            raise SystemExit(status)
