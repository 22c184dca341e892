"""Django's `changepassword`, audited: on the host it may set the password of any account (recovery of a
locked-out administrator), recorded in the audit trail as cli:changepassword."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.management.commands import changepassword

from core.context import RequestContext, access_change, bound, new_request_id

ACTOR = "cli:changepassword"


class Command(changepassword.Command):
    def handle(self, *args: Any, **options: Any) -> str | None:
        with bound(RequestContext(request_id=new_request_id(), actor_repr=ACTOR)), access_change(actor_repr=ACTOR):
            return super().handle(*args, **options)
