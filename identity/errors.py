"""The errors of access changes (docs/admin.md, Granting access): stable codes, mapped to HTTP in
config/exceptions.py."""

from __future__ import annotations

from config.errors import DomainError


class SecondAdministratorRequired(DomainError):
    """A grant of access (a role, a permission, superuser status) or a password set on someone else's
    privileged account, attempted outside the access-request flow."""

    code = "second_administrator_required"
    title = "A second administrator must approve this"
    status = 403


class AccessRequestRefused(DomainError):
    """An access request that cannot be made, approved or rejected as asked."""

    code = "access_request_refused"
    title = "Access request refused"
    status = 409
