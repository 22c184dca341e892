"""A lone administrator cannot release a version with a second account of their own: granting access needs
a second administrator, walked here through the admin as a person would."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User

from audit.models import AuditEvent
from core.roles import Role
from identity.models import AccessRequest, AccessRequestStatus
from tests.audit.test_coverage import form_data
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "sock-puppet-Pa55word!x"


@pytest.fixture
def second_admin(db: None) -> User:
    return UserFactory(username="second-admin", is_superuser=True)


def _puppet(client) -> User:
    client.post(
        "/admin/auth/user/add/",
        {"username": "puppet", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD, "usable_password": "true"},
    )
    return User.objects.get(username="puppet")


@pytest.mark.parametrize("role", [Role.PROMPT_APPROVERS, Role.PROMPT_AUTHORS, Role.KEY_CUSTODIANS])
def test_a_superuser_cannot_give_a_new_account_a_role_in_the_user_form(client, superuser, role):
    client.force_login(superuser)
    puppet = _puppet(client)
    url = f"/admin/auth/user/{puppet.pk}/change/"

    response = client.post(url, form_data(client, url, groups=[str(Group.objects.get(name=role.value).pk)]))

    assert response.status_code == 200  # the form again, explaining the rule
    assert "needs a second administrator" in response.content.decode()
    assert "/admin/identity/accessrequest/add/?subject=" in response.content.decode()
    assert not puppet.groups.exists()


def test_a_superuser_cannot_make_an_account_superuser_or_give_it_a_permission(client, superuser):
    client.force_login(superuser)
    puppet = _puppet(client)
    url = f"/admin/auth/user/{puppet.pk}/change/"
    review = "prompts.review_promptversion"

    client.post(url, form_data(client, url, is_superuser="on"))
    permission_pk = puppet._meta.get_field("user_permissions").related_model.objects.get(codename=review.split(".")[1])
    client.post(url, form_data(client, url, user_permissions=[str(permission_pk.pk)]))

    puppet.refresh_from_db()
    assert not puppet.is_superuser
    assert not puppet.user_permissions.exists()


def test_the_sock_puppet_path_needs_a_second_administrator(client, superuser, second_admin):
    client.force_login(superuser)
    puppet = _puppet(client)
    approvers = Group.objects.get(name=Role.PROMPT_APPROVERS.value)

    client.post(
        "/admin/identity/accessrequest/add/",
        {"subject": puppet.pk, "kind": "role", "group": approvers.pk, "reason": "reviews the support prompts"},
    )
    request = AccessRequest.objects.get(subject=puppet)
    assert request.status == AccessRequestStatus.PENDING
    assert request.requested_by == superuser

    # The requester cannot approve it: the decision page says why, and nothing is granted.
    response = client.post(f"/admin/identity/accessrequest/{request.pk}/decide/approve/", {"note": "fine by me"})
    assert "not the one who filed the request" in response.content.decode()
    request.refresh_from_db()
    assert request.status == AccessRequestStatus.PENDING
    assert not puppet.groups.exists()

    # Nor can the subject, were they an administrator: a second administrator approves, and it applies.
    client.force_login(second_admin)
    page = client.get(f"/admin/identity/accessrequest/{request.pk}/change/").content.decode()
    assert 'id="approve"' in page
    client.post(f"/admin/identity/accessrequest/{request.pk}/decide/approve/", {"note": "checked with HR"})

    request.refresh_from_db()
    assert (request.status, request.decided_by) == (AccessRequestStatus.APPLIED, second_admin)
    assert puppet.groups.filter(pk=approvers.pk).exists()
    actions = list(
        AuditEvent.objects.filter(action__startswith="access").order_by("sequence").values_list("action", "reason")
    )
    assert actions == [
        ("access_request.create", "reviews the support prompts"),
        ("access_request.approve", "checked with HR"),
        ("access.grant", "reviews the support prompts"),
    ]
    grant = AuditEvent.objects.get(action="access.grant")
    assert (grant.actor, grant.object_repr, grant.changes["role"]) == (second_admin, "puppet", "Prompt approvers")


def test_nobody_approves_a_request_for_their_own_access(client, superuser, second_admin):
    client.force_login(superuser)
    client.post(
        "/admin/identity/accessrequest/add/",
        {"subject": second_admin.pk, "kind": "role", "group": Group.objects.get(name="Auditors").pk, "reason": "x"},
    )
    request = AccessRequest.objects.get()
    client.force_login(second_admin)

    response = client.post(f"/admin/identity/accessrequest/{request.pk}/decide/approve/", {"note": "me"})

    assert "their own access" in response.content.decode()
    assert not second_admin.groups.exists()


def test_a_rejected_request_grants_nothing_and_is_recorded(client, superuser, second_admin, outsider):
    client.force_login(superuser)
    client.post(
        "/admin/identity/accessrequest/add/",
        {"subject": outsider.pk, "kind": "superuser", "reason": "covers the holidays"},
    )
    request = AccessRequest.objects.get()
    client.force_login(second_admin)

    client.post(f"/admin/identity/accessrequest/{request.pk}/decide/reject/", {"note": "too broad"})
    response = client.post(f"/admin/identity/accessrequest/{request.pk}/decide/approve/", {"note": "changed mind"})

    request.refresh_from_db()
    outsider.refresh_from_db()
    assert request.status == AccessRequestStatus.REJECTED
    assert "already decided" in response.content.decode()
    assert not outsider.is_superuser
    assert AuditEvent.objects.get(action="access_request.reject").reason == "too broad"


def test_a_request_needs_a_reason_and_cannot_be_edited_once_filed(client, superuser, outsider):
    client.force_login(superuser)
    client.post("/admin/identity/accessrequest/add/", {"subject": outsider.pk, "kind": "superuser", "reason": ""})
    assert not AccessRequest.objects.exists()

    client.post("/admin/identity/accessrequest/add/", {"subject": outsider.pk, "kind": "superuser", "reason": "x"})
    request = AccessRequest.objects.get()
    response = client.post(
        f"/admin/identity/accessrequest/{request.pk}/change/", {"subject": outsider.pk, "kind": "role", "reason": "y"}
    )

    assert response.status_code == 403
    request.refresh_from_db()
    assert (request.kind, request.reason) == ("superuser", "x")


def test_roles_holders_and_staff_without_the_permission_cannot_decide(client, approver, outsider, superuser):
    client.force_login(superuser)
    client.post("/admin/identity/accessrequest/add/", {"subject": outsider.pk, "kind": "superuser", "reason": "x"})
    request = AccessRequest.objects.get()
    client.force_login(approver)

    response = client.post(f"/admin/identity/accessrequest/{request.pk}/decide/approve/", {"note": "ok"})

    assert response.status_code == 403
    assert AccessRequest.objects.get().status == AccessRequestStatus.PENDING


def test_removing_a_role_is_immediate(client, superuser, approver):
    client.force_login(superuser)
    url = f"/admin/auth/user/{approver.pk}/change/"

    client.post(url, form_data(client, url, groups=[]))

    assert not approver.groups.exists()


def test_a_superuser_cannot_set_the_password_of_a_role_holder(client, superuser, author):
    client.force_login(superuser)
    url = f"/admin/auth/user/{author.pk}/password/"

    response = client.post(url, {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD, "usable_password": "true"})

    assert response.status_code == 302
    author.refresh_from_db()
    assert author.check_password(PASSWORD)
    assert not client.login(username=author.username, password=NEW_PASSWORD)


def test_a_superuser_sets_the_password_of_an_account_without_access(client, superuser, outsider):
    client.force_login(superuser)

    client.post(
        f"/admin/auth/user/{outsider.pk}/password/",
        {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD, "usable_password": "true"},
    )

    outsider.refresh_from_db()
    assert outsider.check_password(NEW_PASSWORD)


def test_a_role_holder_changes_their_own_password(client, author):
    client.force_login(author)

    client.post(
        "/admin/password_change/",
        {"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )

    author.refresh_from_db()
    assert author.check_password(NEW_PASSWORD)


def test_a_group_cannot_be_given_permissions_in_the_admin(client, superuser):
    client.force_login(superuser)
    review = Group.objects.get(name=Role.PROMPT_APPROVERS.value).permissions.get(codename="review_promptversion")

    client.post("/admin/auth/group/add/", {"name": "Shadow reviewers", "permissions": [str(review.pk)]})

    assert not Group.objects.filter(name="Shadow reviewers").exists()
