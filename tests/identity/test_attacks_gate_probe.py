"""Attacks on the two-factor gate (identity.middleware): an unverified session sees no admin data."""

from __future__ import annotations

import re

import pytest

from tests.identity.test_mfa import ENROL, VERIFY, enrol, password_client

pytestmark = pytest.mark.django_db


def test_the_verify_and_enrol_pages_of_an_unverified_session_show_the_admins_navigation(approver, author):
    """The pages open before verification are rendered with admin.site.each_context(request), whose
    `available_apps` draws the admin's navigation sidebar: the models the account may reach (audit trail,
    usage, prompts...) are listed to a session that knows only the password, and the user tools link
    Sessions and Change password."""
    enrol(password_client(approver))
    unverified = password_client(approver)
    body = unverified.get(VERIFY).content.decode()
    links = set(re.findall(r'href="(/admin/[^"]*)"', body))
    assert not links - {"/admin/", VERIFY}, sorted(links)

    fresh = password_client(UserFactoryApprover())
    body = fresh.get(ENROL).content.decode()
    links = set(re.findall(r'href="(/admin/[^"]*)"', body))
    assert not links - {"/admin/", ENROL}, sorted(links)


def UserFactoryApprover():
    from core.roles import Role
    from tests.factories import UserFactory

    return UserFactory(username="fresh-approver", roles=[Role.PROMPT_APPROVERS])
