"""The sock-puppet path in a real browser: a superuser cannot give their own second account a role; a
second administrator can, through an access request."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from core.roles import Role
from identity.models import AccessRequest, AccessRequestStatus
from tests.browser.signin import sign_in
from tests.factories import UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PUPPET_PASSWORD = "sock-puppet-Pa55word!x"


def _sign_in(page, base: str, username: str) -> None:
    sign_in(page, base, User.objects.get(username=username))


def test_a_lone_superuser_needs_a_second_administrator_to_give_a_role(live_server, page, superuser):
    second = UserFactory(username="second-admin", is_superuser=True)
    base = live_server.url
    _sign_in(page, base, superuser.username)

    page.goto(f"{base}/admin/auth/user/add/")
    page.fill("#id_username", "puppet")
    page.fill("#id_password1", PUPPET_PASSWORD)
    page.fill("#id_password2", PUPPET_PASSWORD)
    page.click("input[name=_save]")
    page.wait_for_selector("#id_groups_from")
    page.select_option("#id_groups_from", label=Role.PROMPT_APPROVERS.value)
    page.click("#id_groups_add")
    page.click("input[name=_save]")

    assert "needs a second administrator" in page.inner_text(".field-groups")
    page.click(".field-groups a.access-request-link")
    page.select_option("#id_kind", "role")
    page.select_option("#id_group", label=Role.PROMPT_APPROVERS.value)
    page.fill("#id_reason", "reviews the support prompts")
    page.click("input[name=_save]")
    page.wait_for_selector(".messagelist")
    request = AccessRequest.objects.get()
    assert request.subject.username == "puppet"

    page.goto(f"{base}/admin/identity/accessrequest/{request.pk}/decide/approve/")
    page.fill("#id_note", "looks fine")
    page.click("#confirm")
    assert "not the one who filed the request" in page.inner_text(".errorlist")
    page.click("#logout-form button")

    _sign_in(page, base, second.username)
    page.goto(f"{base}/admin/identity/accessrequest/{request.pk}/change/")
    page.click("#approve")
    page.fill("#id_note", "confirmed with their manager")
    page.click("#confirm")
    page.wait_for_selector(".messagelist")

    request.refresh_from_db()
    assert request.status == AccessRequestStatus.APPLIED
    assert User.objects.get(username="puppet").groups.filter(name=Role.PROMPT_APPROVERS.value).exists()
