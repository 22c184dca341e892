from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.context import RequestContext, bound, new_request_id
from core.mfa import mfa_required_roles
from evaluations.demo import (
    DEMO_PASSWORD,
    demo_key_text,
    demo_keys_seed,
    demo_mfa_seed,
    demo_prompts_seed,
    demo_users_seed,
)


class Command(BaseCommand):
    help = (
        "Create the demo data: a user per role, released demo prompts, sandbox keys and demo API clients "
        "(printing a fresh token for each). Idempotent; refuses to run in production."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--force", action="store_true", help="run even though DJANGO_DEBUG is false (never on a real deployment)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG and not options["force"]:
            raise CommandError("seed_demo creates accounts with a known password; it runs only with DJANGO_DEBUG=true.")
        with bound(RequestContext(request_id=new_request_id(), actor_repr="seed_demo")):
            logins = demo_users_seed()
            demo_mfa_seed()
            prompts = demo_prompts_seed()
            tokens = demo_keys_seed()
        self.stdout.write(f"Demo logins (password for all: {DEMO_PASSWORD}):")
        for login in logins:
            note = "created" if login.created else "exists"
            self.stdout.write(f"  {login.username:<10} {login.role:<18} ({note})")
        if mfa_required_roles():
            self.stdout.write(
                f"Two-factor authentication (required of: {', '.join(mfa_required_roles())}): those accounts are "
                f"enrolled with the demo authenticator key {demo_key_text()};\n"
                "  add it to an authenticator app, or print its current code: .venv/bin/python manage.py demo_code"
            )
        if prompts:
            self.stdout.write(f"Demo prompts approved and released everywhere: {', '.join(prompts)}")
        self.stdout.write("Demo API tokens (fresh on every run; valid 30 days; the previous ones are revoked):")
        for environment, token in tokens.items():
            self.stdout.write(f"  {environment:<12} {token}")
