"""Single sign-on in a real browser: the sign-in page's "Sign in with SSO" leads through the identity
provider's own pages (tests/oidc.py, a real OpenID Connect provider) back into the admin, as a person
created at that first sign-in with the role their provider group maps to."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.contrib.auth.models import User

from audit.models import AuditEvent
from core.roles import Role
from tests.oidc import Provider, provider_running

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def provider() -> Iterator[Provider]:
    with provider_running() as running, running.settings():
        yield running


def test_a_first_sso_sign_in_creates_a_prompt_author_and_lands_in_the_admin(live_server, page, provider):
    provider.person_set(
        "00u1-priya", preferred_username="priya", email="priya@example.com", groups=["tollgate-authors", "staff"]
    )
    # The provider's pages style themselves from a CDN, which the test machine does not reach.
    page.route("https://cdn.jsdelivr.net/**", lambda route: route.abort())

    page.goto(f"{live_server.url}/admin/")
    page.click("text=Sign in with SSO")
    page.wait_for_selector("input[name=sub]")
    assert page.url.startswith(provider.issuer)
    page.fill("input[name=sub]", "00u1-priya")
    page.click("button:has-text('Authorize')")

    page.wait_for_selector("#user-tools")
    assert page.url == f"{live_server.url}/admin/"
    assert "priya" in page.inner_text("#user-tools").lower()
    assert "Prompts" in page.inner_text("#content-main")
    priya = User.objects.get(username="priya")
    assert set(priya.groups.values_list("name", flat=True)) == {Role.PROMPT_AUTHORS.value}
    assert AuditEvent.objects.filter(action="auth.sso_sign_in", actor=priya).exists()


def test_a_refused_sso_sign_in_says_why(live_server, page, provider):
    provider.person_set("00u1-sam", preferred_username="sam", groups=["sales"])
    page.route("https://cdn.jsdelivr.net/**", lambda route: route.abort())

    page.goto(f"{live_server.url}/admin/login/")
    page.click("text=Sign in with SSO")
    page.fill("input[name=sub]", "00u1-sam")
    page.click("button:has-text('Authorize')")

    page.wait_for_selector("#sso-refused")
    assert "no Tollgate role" in page.inner_text("#sso-refused")
    assert not User.objects.filter(username="sam").exists()
