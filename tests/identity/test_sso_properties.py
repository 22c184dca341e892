"""Generated claims against single sign-on's guarantees: whatever the provider sends (odd group values,
unicode, a string for a list, missing or huge claims, claims that look like privileges), a sign-in grants
exactly the roles the map gives the exact group names it lists, never superuser status unless the map
names it, and is either accepted or refused — never an error page."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from django.contrib.auth.models import User
from django.db import transaction
from django.test import Client, override_settings
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from core.errors import SingleSignOnRefused
from identity.sso import sso_sign_in
from tests.oidc import ROLE_MAP, Provider, callback_path, provider_running

pytestmark = pytest.mark.django_db

ISSUER = "https://login.example.com/tenant"
ROLE_MAP_WITH_SUPERUSER = {**ROLE_MAP, "tollgate-admins": "superuser"}
KNOWN = [*ROLE_MAP_WITH_SUPERUSER, "everyone"]
# Near misses of the mapped names: another case, padding, a NUL, a look-alike letter, a prefix.
NEAR_MISSES = [
    variant
    for name in ROLE_MAP_WITH_SUPERUSER
    for variant in (name.upper(), f" {name}", f"{name} ", f"{name}\x00", name.replace("o", "\u043e"), name[:-1])
]
GROUP_VALUE = st.one_of(
    st.sampled_from(KNOWN),
    st.sampled_from(NEAR_MISSES),
    st.text(max_size=40),
    st.integers(),
    st.none(),
    st.booleans(),
    st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2),
    st.lists(st.sampled_from(KNOWN), max_size=2),  # nested: not a group name
)
GROUPS_CLAIM = st.one_of(
    st.lists(GROUP_VALUE, max_size=8),
    st.sampled_from(KNOWN),
    st.text(max_size=40),
    st.text(min_size=5000, max_size=20000, alphabet="ab-"),
    st.integers(),
    st.none(),
    st.dictionaries(st.sampled_from(KNOWN), st.booleans(), max_size=3),
)
TEXT_CLAIM = st.one_of(
    st.text(max_size=60),
    st.text(min_size=151, max_size=2000),
    st.from_regex(r"[a-z][a-z0-9._@+-]{0,20}", fullmatch=True),
    st.integers(),
    st.none(),
    st.lists(st.text(max_size=5), max_size=2),
)
PRIVILEGE_LOOKALIKES = st.fixed_dictionaries(
    {},
    optional={
        "is_superuser": st.booleans(),
        "superuser": st.just(True),
        "roles": st.lists(st.sampled_from(["superuser", "Prompt approvers", "admin"]), max_size=3),
        "role": st.sampled_from(["superuser", "Auditors"]),
    },
)


@st.composite
def claims(draw: Any) -> dict[str, Any]:
    result: dict[str, Any] = draw(PRIVILEGE_LOOKALIKES)
    result["sub"] = draw(
        st.one_of(st.text(min_size=1, max_size=40), st.text(min_size=256, max_size=400), st.integers())
    )
    for name, strategy in (("groups", GROUPS_CLAIM), ("preferred_username", TEXT_CLAIM), ("email", TEXT_CLAIM)):
        if draw(st.booleans()):
            result[name] = draw(strategy)
    return result


def expected_roles(claims: dict[str, Any], role_map: dict[str, Any]) -> set[str]:
    """The oracle: the roles the map gives the exact group names the claim lists (a list of strings, or one
    string)."""
    groups = claims.get("groups")
    names = (
        [groups]
        if isinstance(groups, str)
        else [g for g in groups if isinstance(g, str)]
        if isinstance(groups, list)
        else []
    )
    roles: set[str] = set()
    for name in names:
        value = role_map.get(name, [])
        roles |= set(value if isinstance(value, list) else [value])
    return roles


@pytest.mark.parametrize("role_map", [ROLE_MAP, ROLE_MAP_WITH_SUPERUSER], ids=["no superuser", "superuser mapped"])
def test_generated_claims_grant_exactly_the_mapped_roles(role_map):
    @hypothesis_settings(
        max_examples=150,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        derandomize=True,
    )
    @given(first=claims(), second=claims())
    def check(first: dict[str, Any], second: dict[str, Any]) -> None:
        with transaction.atomic():
            # The second sign-in is the same person's (same sub) with other claims: the re-sync.
            second = {**second, "sub": first["sub"]}
            for generated in (first, second):
                wanted = expected_roles(generated, role_map)
                try:
                    user = sso_sign_in(claims=generated)
                except SingleSignOnRefused:
                    continue
                user.refresh_from_db()
                roles = set(user.groups.values_list("name", flat=True))
                assert roles | ({"superuser"} if user.is_superuser else set()) == wanted
                assert roles <= {value for v in role_map.values() for value in (v if isinstance(v, list) else [v])}
                if user.is_superuser:
                    assert "superuser" in role_map.values()
                    assert "tollgate-admins" in expected_groups(generated)
            assert not User.objects.filter(is_superuser=True).exclude(oidc_identity=None).exists() or (
                "superuser" in role_map.values()
            )
            transaction.set_rollback(True)

    with override_settings(
        TOLLGATE_OIDC_ISSUER=ISSUER,
        TOLLGATE_OIDC_CLIENT_ID="tollgate",
        TOLLGATE_OIDC_CLIENT_SECRET="test-only",
        TOLLGATE_OIDC_ROLE_MAP=role_map,
    ):
        check()


def expected_groups(claims: dict[str, Any]) -> list[str]:
    groups = claims.get("groups")
    return (
        [groups]
        if isinstance(groups, str)
        else [g for g in groups if isinstance(g, str)]
        if isinstance(groups, list)
        else []
    )


# --- the same through the provider, over HTTP ----------------------------------------------------------------


@pytest.fixture(scope="module")
def provider() -> Iterator[Provider]:
    with provider_running() as provider:
        yield provider


JSON_CLAIMS = st.fixed_dictionaries(
    {},
    optional={
        "groups": st.one_of(
            st.lists(
                st.one_of(
                    st.sampled_from(KNOWN), st.sampled_from(NEAR_MISSES), st.text(max_size=20), st.integers(), st.none()
                ),
                max_size=6,
            ),
            st.sampled_from(KNOWN),
            st.text(min_size=3000, max_size=6000, alphabet="xy"),
        ),
        "preferred_username": st.one_of(st.text(max_size=40), st.text(min_size=151, max_size=400), st.integers()),
        "email": st.one_of(st.emails(), st.text(max_size=30)),
        "is_superuser": st.booleans(),
    },
)


def test_generated_claims_through_the_provider_never_answer_an_error_page(provider):
    counter = iter(range(10_000))

    @hypothesis_settings(
        max_examples=12,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        derandomize=True,
    )
    @given(generated=JSON_CLAIMS)
    def check(generated: dict[str, Any]) -> None:
        sub = f"generated-{next(counter)}"
        provider.person_set(sub, **generated)
        client = Client()
        start = client.get("/oidc/authenticate/?" + urlencode({"next": "/admin/"}))
        response = client.get(callback_path(provider.authorize(str(start["Location"]), sub)))
        wanted = expected_roles(generated, ROLE_MAP)
        assert response.status_code in (302, 403), response.status_code
        user = User.objects.filter(oidc_identity__subject=sub).first()
        if response.status_code == 302:
            assert user is not None
            assert set(user.groups.values_list("name", flat=True)) == wanted
            assert not user.is_superuser
        else:
            assert user is None or not user.groups.exists()

    with provider.settings():
        check()
