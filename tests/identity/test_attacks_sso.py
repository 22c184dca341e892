"""Attacks on single sign-on (identity.sso), found by a hostile review."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from core.errors import SingleSignOnRefused
from identity import sso

pytestmark = pytest.mark.django_db

ISSUER = "https://idp.example.com"


@pytest.fixture
def sso_on(settings):
    settings.TOLLGATE_OIDC_ISSUER = ISSUER
    settings.TOLLGATE_OIDC_CLIENT_ID = "tollgate"
    settings.TOLLGATE_OIDC_CLIENT_SECRET = "s3cret"
    settings.TOLLGATE_OIDC_ROLE_MAP = {"authors": "Prompt authors"}
    settings.TOLLGATE_OIDC_USERNAME_CLAIMS = ["preferred_username", "email"]
    settings.TOLLGATE_OIDC_ROLES_CLAIM = "groups"


def test_a_compatibility_spelling_of_an_existing_name_creates_a_lookalike_account(sso_on, superuser):
    """identity.sso._account_create refuses a user name that exists in any case ("never linked to an account
    that exists"), but compares the claim before Django's NFKC normalisation (User.normalize_username in
    create_user): fullwidth "ＲＯＯＴ-admin" passes the check and is stored as "ROOT-admin", a case variant
    of the superuser "root-admin" — a lookalike in the audit trail, approvals and access requests."""
    claims = {"sub": "attacker-1", "preferred_username": "ＲＯＯＴ-admin", "groups": ["authors"]}
    with pytest.raises(SingleSignOnRefused):
        sso.sso_sign_in(claims=claims)  # creates "ROOT-admin"
    assert list(User.objects.filter(username__iexact="root-admin").values_list("username", flat=True)) == ["root-admin"]
