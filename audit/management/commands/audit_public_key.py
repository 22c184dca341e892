"""manage.py audit_public_key: the public half of TOLLGATE_AUDIT_SIGNING_KEY, to publish for auditors."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from audit.chain import public_key_pem
from audit.evidence_verify import key_fingerprint


class Command(BaseCommand):
    help = (
        "Print the PEM public key that signs checkpoints and evidence packages (stdout) and its SHA-256 "
        "fingerprint (stderr): what verify_export --public-key / --fingerprint expect."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        pem = public_key_pem()
        self.stdout.write(pem.decode(), ending="")
        self.stderr.write(f"SHA-256 fingerprint: {key_fingerprint(pem)}")
