"""Link an existing account to its identity at the provider (docs/admin.md, Single sign-on): a first
single sign-on never takes over an account that exists, even one of the same name."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.errors import SingleSignOnRefused
from identity.sso import sso_enabled, sso_link


class Command(BaseCommand):
    help = "Link an account to the identity provider's subject identifier (sub) of its holder."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("subject", help="The `sub` claim the provider sends for this person.")

    def handle(self, *args: Any, **options: Any) -> None:
        if not sso_enabled():
            raise CommandError("Single sign-on is not configured (TOLLGATE_OIDC_ISSUER).")
        user = User.objects.filter(username=options["username"]).first()
        if user is None:
            raise CommandError(f"No account named {options['username']}.")
        try:
            identity = sso_link(user=user, subject=options["subject"], actor_repr="cli:sso_link")
        except SingleSignOnRefused as exc:
            raise CommandError(exc.detail) from None
        self.stdout.write(f"{user} linked to {identity}")
