from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.context import RequestContext, bound, new_request_id
from identity.sessions import SessionEnd, sessions_end_for_users

ACTOR = "cli:sessions_end"


class Command(BaseCommand):
    help = (
        "End every session of the named accounts (or of all inactive accounts): after a change made without "
        "signals, such as QuerySet.update() or SQL. Recorded in the audit trail as cli:sessions_end."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("usernames", nargs="*", help="the accounts whose sessions end")
        parser.add_argument("--inactive", action="store_true", help="also every deactivated account")

    def handle(self, *args: Any, **options: Any) -> None:
        names: list[str] = options["usernames"]
        if not names and not options["inactive"]:
            raise CommandError("Name the accounts, or pass --inactive.")
        found = dict(User.objects.filter(username__in=names).values_list("username", "pk"))
        missing = sorted(set(names) - set(found))
        if missing:
            raise CommandError(f"No account named {', '.join(missing)}.")
        user_ids = set(found.values())
        if options["inactive"]:
            user_ids |= set(User.objects.filter(is_active=False).values_list("pk", flat=True))
        with bound(RequestContext(request_id=new_request_id(), actor_repr=ACTOR)):
            ended = sessions_end_for_users(user_ids=user_ids, cause=SessionEnd.BY_ADMINISTRATOR)
        self.stdout.write(self.style.SUCCESS(f"Ended {ended} session(s)."))
