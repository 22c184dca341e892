"""manage.py verify_audit_chain: exit 0 when the audit trail is intact, 1 naming the first bad sequence."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.anchors import anchor_directory
from audit.services import audit_chain_verify, audit_chain_verify_recorded


class Command(BaseCommand):
    help = (
        "Recompute the audit trail's hash chain and check it against the signed hourly checkpoints and their "
        "anchors outside the database."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--public-key", type=Path, help="PEM file of the checkpoint key (default: the configured key's)"
        )
        parser.add_argument(
            "--anchors", type=Path, help="directory of the checkpoint anchors (default: TOLLGATE_AUDIT_ANCHOR_DIR)"
        )
        parser.add_argument(
            "--no-record",
            action="store_true",
            help="do not record the result in the trail (a read-only connection, a copy that must stay as it is)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        public_key = None
        if options["public_key"]:
            try:
                loaded = load_pem_public_key(options["public_key"].read_bytes())
            except (OSError, ValueError) as exc:
                raise CommandError(f"--public-key: cannot read an Ed25519 public key (PEM): {exc}") from None
            if not isinstance(loaded, Ed25519PublicKey):
                raise CommandError("--public-key must be an Ed25519 public key (PEM).")
            public_key = loaded
        directory = options["anchors"] or anchor_directory()
        if options["no_record"]:
            report = audit_chain_verify(public_key=public_key, anchor_dir=directory)
        else:
            report = audit_chain_verify_recorded(
                actor_repr="cli:verify_audit_chain", public_key=public_key, anchor_dir=directory
            )
        if report.problem is not None:
            self.stderr.write(f"FAILED at sequence {report.problem.sequence}: {report.problem.reason}")
            raise SystemExit(1)
        covered = f"; anchored to {report.covered_to}" if report.covered_to else ""
        self.stdout.write(
            f"OK: {report.events} events (#1–#{report.head_sequence}) chained, "
            f"{report.checkpoints} signed checkpoints verified, each equal to its anchor in {directory}{covered}."
        )
