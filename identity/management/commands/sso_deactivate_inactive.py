"""Deactivate the single sign-on accounts with no sign-in for TOLLGATE_OIDC_DEACTIVATE_AFTER_DAYS (Celery beat
runs the same daily: identity.tasks.sso_accounts_deactivate)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from identity.sso import sso_accounts_deactivate_inactive


class Command(BaseCommand):
    help = "Deactivate single sign-on accounts with no sign-in for TOLLGATE_OIDC_DEACTIVATE_AFTER_DAYS days."

    def handle(self, *args: Any, **options: Any) -> None:
        names = sso_accounts_deactivate_inactive()
        for name in names:
            self.stdout.write(f"deactivated {name}")
        self.stdout.write(f"{len(names)} account(s) deactivated")
