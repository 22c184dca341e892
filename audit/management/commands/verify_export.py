"""manage.py verify_export FILE.zip --public-key PEM | --fingerprint HEX | --trust-embedded-key: check an
evidence package's hashes, row counts and signature. Uses no database (`python -m audit.evidence_verify`
does the same without Django). Exit status 0 verified, 1 a mismatch or malformed package, 2 refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from audit.evidence_verify import add_key_arguments, verify_from_command_line


class Command(BaseCommand):
    help = (
        "Check an evidence package offline: every file's SHA-256 and row count, and the manifest's signature by "
        "the expected key."
    )
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path)
        add_key_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        status = verify_from_command_line(
            file=options["file"],
            public_key=options["public_key"],
            fingerprint=options["fingerprint"],
            trust_embedded_key=options["trust_embedded_key"],
            out=self.stdout,  # type: ignore[arg-type]
            err=self.stderr,  # type: ignore[arg-type]
        )
        if status:
            raise SystemExit(status)
