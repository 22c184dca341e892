from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from sandbox.__main__ import serve
from sandbox.state import Config


class Command(BaseCommand):
    help = "Run the Anthropic sandbox upstream: a local stand-in for api.anthropic.com (no database needed)."
    requires_system_checks: list[str] = []
    requires_migrations_checks = False

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8765)
        parser.add_argument("--latency-ms", type=int, default=0, help="added to every /v1/ request")
        parser.add_argument(
            "--batch-seconds", type=float, default=5.0, help="how long a message batch stays in progress"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        config = Config(latency_ms=options["latency_ms"], batch_seconds=options["batch_seconds"])
        serve(options["host"], options["port"], config)
