"""The rule holds below the admin: the ORM refuses grants of access outside an access change."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.core.management import CommandError, call_command
from django.db import transaction

from audit.models import AuditEvent
from core.context import access_change
from core.errors import SecondAdministratorRequired
from core.roles import Role
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_adding_a_role_in_the_shell_is_refused(outsider):
    approvers = Group.objects.get(name=Role.PROMPT_APPROVERS.value)

    with pytest.raises(SecondAdministratorRequired, match="second administrator"), transaction.atomic():
        outsider.groups.add(approvers)
    with pytest.raises(SecondAdministratorRequired), transaction.atomic():
        approvers.user_set.add(outsider)

    assert not outsider.groups.exists()


def test_permissions_and_superuser_status_are_refused_too(outsider, superuser):
    review = Permission.objects.get(codename="review_promptversion")

    with pytest.raises(SecondAdministratorRequired), transaction.atomic():
        outsider.user_permissions.add(review)
    with pytest.raises(SecondAdministratorRequired), transaction.atomic():
        Group.objects.create(name="Shadow").permissions.add(review)
    outsider.is_superuser = True
    with pytest.raises(SecondAdministratorRequired), transaction.atomic():
        outsider.save()
    with pytest.raises(SecondAdministratorRequired), transaction.atomic():
        User.objects.create_superuser("another-root", "r@example.com", "x")


def test_a_group_cannot_be_renamed_into_a_role_or_out_of_one():
    contractors = Group.objects.create(name="Contractors")
    approvers = Group.objects.get(name=Role.PROMPT_APPROVERS.value)

    approvers.name = "Former approvers"
    with pytest.raises(SecondAdministratorRequired), transaction.atomic():
        approvers.save()
    contractors.name = Role.PROMPT_APPROVERS.value
    with pytest.raises(SecondAdministratorRequired), transaction.atomic():
        contractors.save()
    contractors.name = "Contractors 2026"
    contractors.save()  # not a role: renamed freely


def test_revoking_is_never_refused(approver, superuser):
    approver.groups.clear()
    superuser.is_superuser = False
    superuser.save()

    assert not approver.groups.exists()


def test_the_password_of_a_privileged_account_is_refused_outside_a_request(author, outsider):
    author.set_password("shell-set-password-1")
    with pytest.raises(SecondAdministratorRequired, match="Only its holder"), transaction.atomic():
        author.save()

    outsider.set_password("shell-set-password-1")
    outsider.save()  # holds nothing: allowed


def test_an_access_change_allows_grants(outsider):
    with access_change(actor_repr="test"):
        outsider.groups.add(Group.objects.get(name=Role.AUDITORS.value))

    assert outsider.groups.count() == 1


def test_grant_access_bootstraps_a_role_and_is_audited(outsider):
    out = StringIO()

    call_command("grant_access", user=outsider.username, role="Auditors", reason="first auditor", stdout=out)

    assert outsider.groups.filter(name="Auditors").exists()
    event = AuditEvent.objects.get(action="access.grant")
    assert (event.actor_repr, event.reason, event.changes["role"]) == ("cli:grant_access", "first auditor", "Auditors")
    assert AuditEvent.objects.filter(action="user.groups_change", actor_repr="cli:grant_access").exists()


def test_grant_access_gives_a_role_holder_staff_status():
    newcomer = UserFactory(username="newcomer", is_staff=False)

    call_command("grant_access", user="newcomer", role="Prompt authors", reason="joins", stdout=StringIO())

    newcomer.refresh_from_db()
    assert newcomer.is_staff


def test_grant_access_grants_superuser_status(outsider):
    call_command("grant_access", user=outsider.username, superuser=True, reason="recovery", stdout=StringIO())

    outsider.refresh_from_db()
    assert outsider.is_superuser
    assert outsider.is_staff


def test_grant_access_needs_an_existing_account():
    with pytest.raises(CommandError, match="No account"):
        call_command("grant_access", user="ghost", superuser=True, reason="x", stdout=StringIO())


def test_createsuperuser_works_on_a_new_install_only(monkeypatch):
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "first-admin-Pa55word!")

    call_command("createsuperuser", username="first", email="f@example.com", interactive=False, stdout=StringIO())

    first = User.objects.get(username="first")
    assert first.is_superuser
    assert AuditEvent.objects.get(action="user.create", object_repr="first").actor_repr == "cli:createsuperuser"
    with pytest.raises(CommandError, match="active superuser exists"):
        call_command("createsuperuser", username="second", email="s@example.com", interactive=False)


def test_changepassword_on_the_host_is_audited(author, monkeypatch):
    monkeypatch.setattr("getpass.getpass", lambda prompt="": "host-reset-Pa55word!")

    call_command("changepassword", author.username, stdout=StringIO())

    author.refresh_from_db()
    assert author.check_password("host-reset-Pa55word!")
    event = AuditEvent.objects.filter(action="user.update", object_repr=author.username).latest("sequence")
    assert event.actor_repr == "cli:changepassword"
    assert "password_changed" in event.changes


def test_a_sign_in_that_rehashes_the_password_of_a_role_holder_still_works(client, settings):
    author = UserFactory(username="old-hash", roles=[Role.PROMPT_AUTHORS])
    settings.PASSWORD_HASHERS = [
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",
        "django.contrib.auth.hashers.MD5PasswordHasher",
    ]

    assert client.login(username=author.username, password="correct-horse-battery-staple")
    author.refresh_from_db()
    assert author.password.startswith("pbkdf2_sha256$")
