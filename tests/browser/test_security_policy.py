"""The Content-Security-Policy in a real browser: our pages and the API docs break none of it, and the
browser fixtures catch a page that does."""

from __future__ import annotations

import pytest

from tests.factories import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_api_docs_render_under_the_policy(live_server, page, settings):
    settings.TOLLGATE_API_DOCS_PUBLIC = True

    page.goto(f"{live_server.url}/api/docs/")

    page.wait_for_selector(".swagger-ui .info .title")
    assert "Tollgate API" in page.inner_text(".swagger-ui .info .title")
    page.wait_for_selector(".opblock-tag")


def test_a_locked_out_sign_in_page_says_so(live_server, page, auditor, settings):
    for attempt in range(settings.AXES_FAILURE_LIMIT):
        page.goto(f"{live_server.url}/admin/login/")
        page.fill("#id_username", auditor.username)
        page.fill("#id_password", f"wrong-{attempt}")
        page.click("input[type=submit]")
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", auditor.username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")

    assert "Sign-in temporarily locked" in page.inner_text("#content")
    assert "15 minutes" in page.inner_text("#locked-out")


def test_the_fixtures_catch_an_inline_script(live_server, page, csp_violations):
    page.goto(f"{live_server.url}/admin/login/")

    page.evaluate("""() => {
      const script = document.createElement("script");
      script.textContent = "document.title = 'injected'";
      document.head.appendChild(script);
    }""")
    page.wait_for_timeout(200)

    assert page.title() != "injected"
    assert any("script-src" in violation for violation in csp_violations)
