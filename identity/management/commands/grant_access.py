from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.context import RequestContext, bound, new_request_id
from core.errors import DomainError
from core.roles import Role
from identity.models import AccessKind
from identity.services import access_bootstrap_grant

ACTOR = "cli:grant_access"


class Command(BaseCommand):
    help = (
        "Grant a role or superuser status from the command line, without a second administrator: for the first "
        "administrators of an installation and for recovery. Recorded in the audit trail as cli:grant_access. "
        "In the admin, grants go through access requests approved by a second administrator."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--user", required=True, help="the username of the account")
        what = parser.add_mutually_exclusive_group(required=True)
        what.add_argument("--role", choices=[role.value for role in Role], help="a role to grant")
        what.add_argument("--superuser", action="store_true", help="grant superuser status (and staff status)")
        parser.add_argument("--reason", required=True, help="why: kept in the audit trail")

    def handle(self, *args: Any, **options: Any) -> None:
        subject = User.objects.filter(username=options["user"]).first()
        if subject is None:
            raise CommandError(f"No account named {options['user']!r}; create it first (createsuperuser or the admin).")
        group = Group.objects.get(name=options["role"]) if options["role"] else None
        kind = AccessKind.ROLE if group is not None else AccessKind.SUPERUSER
        with bound(RequestContext(request_id=new_request_id(), actor_repr=ACTOR)):
            try:
                granted = access_bootstrap_grant(
                    subject=subject, kind=kind, group=group, reason=options["reason"], actor_repr=ACTOR
                )
            except DomainError as error:
                raise CommandError(error.detail) from error
        what = f"role {group.name}" if group is not None else "superuser status"
        if granted:
            self.stdout.write(self.style.SUCCESS(f"Granted {what} to {subject}."))
        else:
            self.stdout.write(f"{subject} already holds {what}; nothing changed.")
