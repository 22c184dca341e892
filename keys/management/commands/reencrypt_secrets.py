from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from keys.crypto import primary_key_id
from keys.services import reencrypt_secrets


class Command(BaseCommand):
    help = "Re-wrap every stored secret under the primary key-encryption key (the first of TOLLGATE_ENCRYPTION_KEYS)."

    def handle(self, *args: Any, **options: Any) -> None:
        counts = reencrypt_secrets()
        self.stdout.write(
            f"Re-encrypted under '{primary_key_id()}': {counts['provider_keys']} provider key(s), "
            f"{counts['webhook_secrets']} webhook secret(s). Keys no longer listed can now be removed."
        )
