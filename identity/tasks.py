"""Celery tasks of the identity app: thin wrappers around services."""

from __future__ import annotations

from celery import shared_task

from identity.sessions import sessions_clear_ended
from identity.sso import sso_accounts_deactivate_inactive


@shared_task(name="identity.tasks.sessions_clear", ignore_result=True)
def sessions_clear() -> None:
    """Hourly: delete the rows of sessions past their idle timeout or lifetime."""
    sessions_clear_ended()


@shared_task(name="identity.tasks.sso_accounts_deactivate", ignore_result=True)
def sso_accounts_deactivate() -> None:
    """Daily: deactivate the single sign-on accounts with no sign-in for TOLLGATE_OIDC_DEACTIVATE_AFTER_DAYS."""
    sso_accounts_deactivate_inactive()
