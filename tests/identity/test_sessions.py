"""Admin sessions: they end at their idle timeout and their lifetime, their holder sees and ends them, a
superuser ends another person's, and they all end when their holder loses access — by every path."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from io import StringIO
from typing import Any

import pytest
import time_machine
from django.contrib.auth.models import Group, Permission, User
from django.core.management import call_command
from django.test import Client
from qsessions.models import Session

from audit.models import AuditEvent
from core.context import access_change
from core.errors import RoleRequired
from core.roles import Role
from identity import sessions as session_services
from identity.sessions import SessionEnd, session_ref
from identity.tasks import sessions_clear
from tests.audit.test_coverage import form_data
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

START = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
HOME = "/admin/"
OWN_PAGE = "/admin/auth/user/sessions/"


def signed_in(user: User, **headers: Any) -> Client:
    client = Client(**headers)
    client.force_login(user)
    return client


def is_signed_in(client: Client) -> bool:
    response = client.get(HOME)
    return response.status_code == 200


def ends(user: User, cause: str) -> int:
    return AuditEvent.objects.filter(
        action="session.end", object_type="auth.user", object_id=str(user.pk), changes__cause=cause
    ).count()


# --- limits -----------------------------------------------------------------------------------------------


def test_it_ends_an_idle_session_with_a_message(auditor):
    with time_machine.travel(START, tick=False) as traveller:
        client = signed_in(auditor)
        assert is_signed_in(client)
        traveller.shift(timedelta(minutes=29))
        assert is_signed_in(client)  # 29 minutes idle: still on
        traveller.shift(timedelta(minutes=30))

        response = client.get("/admin/audit/")

        assert response.status_code == 302
        assert response["Location"] == "/admin/login/?next=%2Fadmin%2Faudit%2F"
        page = client.get(response["Location"])
        assert "signed out after 30 minutes without activity" in page.content.decode()
        assert not Session.objects.filter(user=auditor).exists()
        assert ends(auditor, SessionEnd.IDLE) == 1
        assert not is_signed_in(client)


def test_activity_keeps_a_session_on_until_its_lifetime(auditor, settings):
    settings.TOLLGATE_SESSION_MAX_HOURS = 2
    with time_machine.travel(START, tick=False) as traveller:
        client = signed_in(auditor)
        for _ in range(4):  # a request every 25 minutes: 1 hour 40 minutes
            traveller.shift(timedelta(minutes=25))
            assert is_signed_in(client)
        traveller.shift(timedelta(minutes=19))
        assert is_signed_in(client)
        traveller.shift(timedelta(minutes=1))  # 2 hours after signing in

        response = client.get(HOME)

        assert response.status_code == 302
        assert "reached its limit of 2 hours" in client.get(response["Location"]).content.decode()
        assert ends(auditor, SessionEnd.LIFETIME) == 1


def test_the_last_seen_time_is_written_at_most_once_a_minute(auditor):
    with time_machine.travel(START, tick=False) as traveller:
        client = signed_in(auditor)
        client.get(HOME)
        written = Session.objects.get(user=auditor).updated_at
        traveller.shift(timedelta(seconds=59))
        client.get(HOME)
        assert Session.objects.get(user=auditor).updated_at == written  # not written again

        traveller.shift(timedelta(seconds=2))
        client.get(HOME)
        assert Session.objects.get(user=auditor).updated_at == START + timedelta(seconds=61)


def test_the_limits_are_settings(auditor, settings):
    settings.TOLLGATE_SESSION_IDLE_MINUTES = 5
    with time_machine.travel(START, tick=False) as traveller:
        client = signed_in(auditor)
        traveller.shift(timedelta(minutes=5))
        assert not is_signed_in(client)


# --- one's own sessions -------------------------------------------------------------------------------------


def test_the_page_lists_ones_sessions_and_marks_this_one_without_showing_keys(auditor, approver, settings):
    settings.TOLLGATE_TRUSTED_PROXIES = 1
    laptop = signed_in(auditor, HTTP_USER_AGENT="Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0")
    phone = signed_in(auditor, HTTP_USER_AGENT="Mozilla/5.0 (iPhone) Mobile Safari")
    phone.get(HOME, REMOTE_ADDR="10.0.0.9", HTTP_X_FORWARDED_FOR="203.0.113.7")
    signed_in(approver)  # someone else's: not listed

    response = laptop.get(OWN_PAGE)

    page = response.content.decode()
    assert response.status_code == 200
    rows = response.context["sessions"]
    assert len(rows) == 2
    assert [row.current for row in rows].count(True) == 1
    assert "(this session)" in page
    assert "203.0.113.7" in page  # the client's address, as the trusted proxy saw it
    assert "10.0.0.9" not in page
    assert "iPhone" in page
    for key in Session.objects.values_list("session_key", flat=True):
        assert key not in page


def test_the_header_links_to_the_page(auditor):
    assert f'href="{OWN_PAGE}"' in signed_in(auditor).get(HOME).content.decode()


def test_sign_out_everywhere_else_ends_the_other_sessions_only(auditor, approver):
    here, elsewhere = signed_in(auditor), signed_in(auditor)
    colleague = signed_in(approver)

    response = here.post(OWN_PAGE, {"others": "1"})

    assert response.status_code == 302
    assert "1 session(s) ended" in here.get(response["Location"]).content.decode()
    assert is_signed_in(here)
    assert not is_signed_in(elsewhere)
    assert is_signed_in(colleague)
    assert ends(auditor, SessionEnd.SIGNED_OUT_ELSEWHERE) == 1


def test_ending_one_session(auditor):
    here, elsewhere, third = signed_in(auditor), signed_in(auditor), signed_in(auditor)

    key = elsewhere.session.session_key

    here.post(OWN_PAGE, {"ref": session_ref(key)})

    assert not is_signed_in(elsewhere)
    assert is_signed_in(here)
    assert is_signed_in(third)
    event = AuditEvent.objects.get(action="session.end")
    assert event.changes["refs"] == [session_ref(key)]
    assert key not in str(event.changes)


def test_ending_this_session_signs_out(auditor):
    here = signed_in(auditor)
    response = here.post(OWN_PAGE, {"ref": session_ref(here.session.session_key)})
    assert response["Location"] == "/admin/login/"
    assert not is_signed_in(here)


def test_nobody_ends_someone_elses_session_through_their_own_page(auditor, approver):
    mine, theirs = signed_in(auditor), signed_in(approver)
    response = mine.post(OWN_PAGE, {"ref": session_ref(theirs.session.session_key)})
    assert "already ended" in mine.get(response["Location"]).content.decode()
    assert is_signed_in(theirs)


def test_an_unknown_ref_ends_nothing(auditor):
    here = signed_in(auditor)
    here.post(OWN_PAGE, {"ref": "not-a-session"})
    assert is_signed_in(here)
    assert not AuditEvent.objects.filter(action="session.end").exists()


# --- another person's sessions ------------------------------------------------------------------------------


def test_a_superuser_sees_and_ends_another_persons_sessions(superuser, auditor):
    admin, one, two = signed_in(superuser), signed_in(auditor), signed_in(auditor)
    page = f"/admin/auth/user/{auditor.pk}/sessions/"

    assert page in admin.get(f"/admin/auth/user/{auditor.pk}/change/").content.decode()
    assert len(admin.get(page).context["sessions"]) == 2
    admin.post(page, {"ref": session_ref(one.session.session_key)})
    assert not is_signed_in(one)
    assert is_signed_in(two)
    admin.post(page, {"others": "1"})
    assert not is_signed_in(two)
    assert is_signed_in(admin)
    assert ends(auditor, SessionEnd.BY_ADMINISTRATOR) == 2
    assert AuditEvent.objects.filter(action="session.end", actor=superuser).count() == 2


def test_only_a_superuser_sees_or_ends_another_persons_sessions(auditor, approver):
    theirs = signed_in(approver)
    page = f"/admin/auth/user/{approver.pk}/sessions/"
    assert signed_in(auditor).get(page).status_code == 403
    assert signed_in(auditor).post(page, {"others": "1"}).status_code == 403
    with pytest.raises(RoleRequired):
        session_services.sessions_end_others(actor=auditor, subject=approver, keep_key=None)
    assert is_signed_in(theirs)


# --- losing access ends every session, by every path --------------------------------------------------------


def _auditors() -> Group:
    return Group.objects.get(name=Role.AUDITORS.value)


def _admin_form(change: dict[str, Any]) -> Callable[[User], None]:
    def remove(user: User) -> None:
        admin = signed_in(UserFactory(username="form-root", is_superuser=True))
        url = f"/admin/auth/user/{user.pk}/change/"
        data = form_data(admin, url, **change)
        if change.get("is_active") is False:
            data.pop("is_active")
        if change.get("is_staff") is False:
            data.pop("is_staff")
        response = admin.post(url, data)
        assert response.status_code == 302, response.context["adminform"].form.errors

    return remove


def _saved(update_fields: list[str] | None = None, **fields: Any) -> Callable[[User], None]:
    def save(user: User) -> None:
        for name, value in fields.items():
            setattr(user, name, value)
        user.save(update_fields=update_fields)

    return save


def _group_deleted() -> None:
    _auditors().delete()


def _permission_removed(user: User) -> None:
    review = Permission.objects.get(codename="review_promptversion")
    with access_change(actor_repr="test"):
        user.user_permissions.add(review)
    user.user_permissions.remove(review)


REMOVALS: dict[str, tuple[Callable[[User], None], str]] = {
    "the admin's form: a role": (_admin_form({"groups": []}), SessionEnd.ROLE_REMOVED),
    "the admin's form: deactivated": (_admin_form({"is_active": False}), SessionEnd.DEACTIVATED),
    "the admin's form: staff status": (_admin_form({"is_staff": False}), SessionEnd.STAFF_REMOVED),
    "user.groups.remove": (lambda user: user.groups.remove(_auditors()), SessionEnd.ROLE_REMOVED),
    "user.groups.clear": (lambda user: user.groups.clear(), SessionEnd.ROLE_REMOVED),
    "user.groups.set": (lambda user: user.groups.set([]), SessionEnd.ROLE_REMOVED),
    "group.user_set.remove": (lambda user: _auditors().user_set.remove(user), SessionEnd.ROLE_REMOVED),
    "group.user_set.clear": (lambda user: _auditors().user_set.clear(), SessionEnd.ROLE_REMOVED),
    "the group deleted": (lambda user: _group_deleted(), SessionEnd.ROLE_REMOVED),
    "a permission held directly": (_permission_removed, SessionEnd.PERMISSION_REMOVED),
    "is_active=False saved (a sign-in provider)": (_saved(is_active=False), SessionEnd.DEACTIVATED),
    "save(update_fields=['is_active'])": (_saved(is_active=False, update_fields=["is_active"]), SessionEnd.DEACTIVATED),
    "staff status saved": (_saved(is_staff=False), SessionEnd.STAFF_REMOVED),
}


@pytest.mark.parametrize("path", list(REMOVALS))
def test_losing_access_ends_every_session(path, approver):
    subject = UserFactory(username="frank-auditor", roles=[Role.AUDITORS])
    remove, cause = REMOVALS[path]
    first, second = signed_in(subject), signed_in(subject)
    bystander = signed_in(approver)

    remove(subject)

    assert not Session.objects.filter(user=subject).exists()
    assert not is_signed_in(first)
    assert not is_signed_in(second)
    assert is_signed_in(bystander)
    assert ends(subject, cause) == 1


def test_losing_superuser_status_ends_every_session(approver):
    subject = UserFactory(username="former-root", is_superuser=True)
    client = signed_in(subject)
    _saved(is_superuser=False)(subject)
    assert not Session.objects.filter(user=subject).exists()
    assert ends(subject, SessionEnd.SUPERUSER_REMOVED) == 1
    assert not is_signed_in(client)


def test_a_superuser_removing_their_own_status_is_signed_out_cleanly(superuser):
    client = signed_in(superuser)
    url = f"/admin/auth/user/{superuser.pk}/change/"
    response = client.post(url, form_data(client, url, is_superuser=""))
    assert response.status_code == 302
    assert not is_signed_in(client)


def test_changes_that_remove_nothing_end_nothing(auditor, approver):
    client = signed_in(auditor)
    auditor.groups.remove(Group.objects.get(name=Role.PROMPT_APPROVERS.value))  # not held
    auditor.user_permissions.clear()  # none held
    Group.objects.get(name=Role.KEY_CUSTODIANS.value).user_set.clear()  # no member
    _saved(first_name="Dave")(auditor)
    auditor.save(update_fields=["last_login"])
    assert is_signed_in(client)
    assert not AuditEvent.objects.filter(action="session.end").exists()


def test_a_queryset_update_sends_no_signal_but_the_request_time_checks_hold(auditor):
    client = signed_in(auditor)
    User.objects.filter(pk=auditor.pk).update(is_active=False)
    assert Session.objects.filter(user=auditor).exists()  # documented: no signal, the row stays
    assert not is_signed_in(client)  # an inactive account is not signed in all the same

    out = StringIO()
    call_command("sessions_end", "--inactive", stdout=out)
    assert "Ended 1 session(s)" in out.getvalue()
    assert not Session.objects.filter(user=auditor).exists()
    assert AuditEvent.objects.get(action="session.end").actor_repr == "cli:sessions_end"


def test_the_rows_of_ended_sessions_are_cleared(auditor, approver):
    with time_machine.travel(START, tick=False) as traveller:
        signed_in(auditor)
        traveller.shift(timedelta(minutes=20))
        active = signed_in(approver)
        traveller.shift(timedelta(minutes=15))  # the auditor's idle past the timeout, the approver's not

        sessions_clear.delay()

        assert list(Session.objects.values_list("user_id", flat=True)) == [approver.pk]
        assert is_signed_in(active)
