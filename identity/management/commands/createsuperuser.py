"""Django's `createsuperuser`, for the first install only: once an active superuser exists, further ones are
granted through an access request approved by a second administrator (or `grant_access`)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.management.commands import createsuperuser
from django.core.management.base import CommandError

from core.context import RequestContext, bound, new_request_id
from identity.guard import active_superuser_exists

ACTOR = "cli:createsuperuser"


class Command(createsuperuser.Command):
    help = (
        "Create the first superuser of an installation. Refused once an active superuser exists: then "
        "administrators grant superuser status through an access request (or `grant_access`)."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        if active_superuser_exists():
            raise CommandError(
                "An active superuser exists: createsuperuser only sets up a new installation. Create the account "
                "in the admin and file an access request for superuser status, which a second administrator "
                "approves (or use `manage.py grant_access --superuser` on the host; it is audited)."
            )
        # Binding the context names the command as the actor of the audit events of the new account.
        with bound(RequestContext(request_id=new_request_id(), actor_repr=ACTOR)):
            super().handle(*args, **options)
