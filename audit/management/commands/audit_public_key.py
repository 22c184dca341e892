"""manage.py audit_public_key: the public half of TOLLGATE_AUDIT_SIGNING_KEY, to publish for auditors."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from audit.chain import public_key_pem, public_key_raw
from audit.evidence_verify import key_fingerprint


class Command(BaseCommand):
    help = (
        "Print the PEM public key that signs checkpoints and evidence packages (stdout) and its SHA-256 "
        "fingerprint (stderr): what verify_export --public-key / --fingerprint expect."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--raw",
            action="store_true",
            help="print the base64 of the 32 raw bytes instead: how TOLLGATE_AUDIT_RETIRED_PUBLIC_KEYS lists a key",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["raw"]:
            self.stdout.write(public_key_raw())
            return
        pem = public_key_pem()
        self.stdout.write(pem.decode(), ending="")
        self.stderr.write(f"SHA-256 fingerprint: {key_fingerprint(pem)}")
