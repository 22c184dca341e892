"""Admin sessions: their limits, the list of a person's sessions, and ending them (docs/admin.md, Sessions).

Sessions are django-qsessions' rows, which name their holder, address and browser. A session ends after
TOLLGATE_SESSION_IDLE_MINUTES without a request and TOLLGATE_SESSION_MAX_HOURS after its sign-in
(identity.session_middleware checks both at every request); its holder ends it or all their others from the
Sessions page; a superuser ends another person's; and a person's sessions all end when they lose a role or
are deactivated (identity.session_receivers).

A session key is a bearer credential: it is never shown. Pages name a session by `session_ref`, an HMAC of
its key that cannot be turned back into it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.crypto import constant_time_compare, salted_hmac
from qsessions.models import Session

from audit.services import audit_event_record
from core.context import current
from core.errors import RoleRequired

# Keys of our own in a session's data: when it was signed in, and when it was last seen (seconds since the
# epoch). The last-seen time is written at most once a minute, so that a busy page does not write the
# session row on every request.
STARTED_KEY = "tollgate_session_started"
SEEN_KEY = "tollgate_session_seen"
SEEN_REFRESH_SECONDS = 60


class SessionEnd:
    """Why sessions ended: the `cause` of their `session.end` audit event."""

    IDLE = "idle_timeout"
    LIFETIME = "lifetime_reached"
    SIGNED_OUT = "signed_out"
    SIGNED_OUT_ELSEWHERE = "signed_out_everywhere_else"
    BY_ADMINISTRATOR = "ended_by_administrator"
    DEACTIVATED = "deactivated"
    ROLE_REMOVED = "role_removed"
    STAFF_REMOVED = "staff_status_removed"
    SUPERUSER_REMOVED = "superuser_status_removed"
    PERMISSION_REMOVED = "permission_removed"
    MFA_REMOVED = "two_factor_removed"
    MFA_RESET = "two_factor_reset"


def idle_limit() -> timedelta:
    return timedelta(minutes=settings.TOLLGATE_SESSION_IDLE_MINUTES)


def lifetime_limit() -> timedelta:
    return timedelta(hours=settings.TOLLGATE_SESSION_MAX_HOURS)


def session_ref(session_key: str) -> str:
    """The name of a session on pages and in the audit trail (its key is a credential)."""
    return salted_hmac("tollgate.identity.session_ref", session_key).hexdigest()[:20]


def session_stamp(*, session: Any, now: datetime) -> None:
    """Mark a session as signed in and seen `now` (at sign-in)."""
    session[STARTED_KEY] = session[SEEN_KEY] = now.timestamp()


def session_limit_reached(*, session: Any, now: datetime) -> str | None:
    """Which limit a signed-in session is past (SessionEnd.IDLE or .LIFETIME), or None; refreshes the
    last-seen time when it is older than a minute. A session without our stamps (signed in before they
    existed) is stamped now."""
    started, seen = session.get(STARTED_KEY), session.get(SEEN_KEY)
    if not isinstance(started, (int, float)) or not isinstance(seen, (int, float)):
        session_stamp(session=session, now=now)
        return None
    moment = now.timestamp()
    if moment - started >= lifetime_limit().total_seconds():
        return SessionEnd.LIFETIME
    if moment - seen >= idle_limit().total_seconds():
        return SessionEnd.IDLE
    if moment - seen >= SEEN_REFRESH_SECONDS:
        session[SEEN_KEY] = moment
    return None


# --- reading ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SessionRow:
    """One live session as the Sessions pages show it."""

    ref: str
    created: datetime | None
    last_seen: datetime
    ip: str | None
    user_agent: str
    device: str
    current: bool


def session_list(*, user: User, current_key: str | None = None) -> list[SessionRow]:
    """`user`'s sessions that may still be used, most recently seen first; `current_key` is marked."""
    now = timezone.now()
    # The last-seen time of a row is written at most a minute late.
    live = Session.objects.filter(
        user=user,
        expire_date__gt=now,
        updated_at__gt=now - idle_limit() - timedelta(seconds=SEEN_REFRESH_SECONDS),
        created_at__gt=now - lifetime_limit(),
    ).order_by("-updated_at", "-created_at")
    return [
        SessionRow(
            ref=session_ref(row.session_key),
            created=row.created_at,
            last_seen=row.updated_at,
            ip=row.ip,
            user_agent=row.user_agent or "",
            device=row.device,
            current=current_key is not None and constant_time_compare(row.session_key, current_key),
        )
        for row in live
    ]


# --- ending -----------------------------------------------------------------------------------------------


def _current_request() -> Any:
    context = current()
    return context.request if context else None


def _sessions_delete(sessions: QuerySet[Session]) -> dict[int | None, int]:
    """Delete the sessions (from the cache too: qsessions' queryset does) and return how many each holder
    lost. The session of the request in progress, when among them, is emptied as well, so that the end of
    the request does not write it back."""
    rows = list(sessions.values_list("session_key", "user_id"))
    if not rows:
        return {}
    keys = [key for key, _ in rows]
    Session.objects.filter(session_key__in=keys).delete()
    request = _current_request()
    own = getattr(request, "session", None) if request is not None else None
    if own is not None and own.session_key in keys:
        own.flush()
    counts: dict[int | None, int] = {}
    for _, user_id in rows:
        counts[user_id] = counts.get(user_id, 0) + 1
    return counts


def _record(*, user: User, count: int, cause: str, actor: User | None = None, refs: Iterable[str] = ()) -> None:
    changes: dict[str, Any] = {"sessions": count, "cause": cause}
    if refs:
        changes["refs"] = sorted(refs)
    audit_event_record(action="session.end", actor=actor, target=user, changes=changes)


@transaction.atomic
def sessions_end_for_users(*, user_ids: Iterable[int], cause: str) -> int:
    """End every session of these people (they lost a role or were deactivated). Returns how many ended."""
    ids = {user_id for user_id in user_ids if user_id is not None}
    if not ids:
        return 0
    counts = _sessions_delete(Session.objects.filter(user_id__in=ids))
    for user in User.objects.filter(pk__in=counts):
        _record(user=user, count=counts[user.pk], cause=cause)
    return sum(counts.values())


def sessions_clear_ended() -> int:
    """Delete the rows of sessions that can no longer be used (past either limit, or expired): their holders
    were signed out by the limits, whether or not they came back to be told. Returns how many."""
    now = timezone.now()
    ended = Session.objects.filter(
        Q(expire_date__lte=now)
        | Q(updated_at__lte=now - idle_limit() - timedelta(seconds=SEEN_REFRESH_SECONDS))
        | Q(created_at__lte=now - lifetime_limit())
    )
    count: int = ended.delete()[0]
    return count


@transaction.atomic
def session_expire(*, user: User, session_key: str, cause: str) -> None:
    """Record that a session ended at a limit (the middleware signs it out)."""
    _record(user=user, count=1, cause=cause, actor=user, refs=[session_ref(session_key)])


def _matching(*, user: User, ref: str) -> QuerySet[Session]:
    keys = list(Session.objects.filter(user=user).values_list("session_key", flat=True))
    matching: QuerySet[Session] = Session.objects.filter(
        session_key__in=[key for key in keys if constant_time_compare(session_ref(key), ref)]
    )
    return matching


def _may_end(*, actor: User, subject: User) -> None:
    if actor.pk != subject.pk and not actor.is_superuser:
        raise RoleRequired("Only a superuser ends another person's sessions.")


@transaction.atomic
def session_end(*, actor: User, subject: User, ref: str) -> bool:
    """End one of `subject`'s sessions (named by its ref). `actor` is `subject` or a superuser. Returns False
    when no such session is left."""
    _may_end(actor=actor, subject=subject)
    ended = sum(_sessions_delete(_matching(user=subject, ref=ref)).values())
    if ended:
        cause = SessionEnd.SIGNED_OUT if actor.pk == subject.pk else SessionEnd.BY_ADMINISTRATOR
        _record(user=subject, count=ended, cause=cause, actor=actor, refs=[ref])
    return bool(ended)


@transaction.atomic
def sessions_end_others(*, actor: User, subject: User, keep_key: str | None, cause: str | None = None) -> int:
    """End all of `subject`'s sessions but the one whose key is `keep_key` (the actor's own, when they sign
    out everywhere else; None ends them all). `cause` says why, when it is not that. Returns how many ended."""
    _may_end(actor=actor, subject=subject)
    sessions = Session.objects.filter(user=subject)
    if keep_key:
        sessions = sessions.exclude(session_key=keep_key)
    ended = sum(_sessions_delete(sessions).values())
    if ended:
        if cause is None:
            cause = SessionEnd.SIGNED_OUT_ELSEWHERE if actor.pk == subject.pk else SessionEnd.BY_ADMINISTRATOR
        _record(user=subject, count=ended, cause=cause, actor=actor)
    return ended
