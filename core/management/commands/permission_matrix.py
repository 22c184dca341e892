"""`manage.py permission_matrix --markdown [path]`: write who can do what (core/permission_matrix.py) as
Markdown, to docs/permissions.md unless a path is given."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from core import permission_matrix


class Command(BaseCommand):
    help = "Write the permission matrix (core/permission_matrix.py) as Markdown: docs/permissions.md by default."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--markdown", nargs="?", const=str(permission_matrix.DOCS_PAGE), required=True, metavar="PATH"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        Path(options["markdown"]).write_text(permission_matrix.markdown())
        self.stdout.write(f"wrote {options['markdown']}")
