from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from evaluations.demo import demo_code


class Command(BaseCommand):
    help = (
        "Print the current code of the demo authenticator, the second factor `seed_demo` enrolls the demo "
        "accounts that must use one with. Runs only with DJANGO_DEBUG=true, as seed_demo does."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--force", action="store_true", help="run even though DJANGO_DEBUG is false (never on a real deployment)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG and not options["force"]:
            raise CommandError("demo_code belongs to the demo accounts; it runs only with DJANGO_DEBUG=true.")
        self.stdout.write(demo_code())
