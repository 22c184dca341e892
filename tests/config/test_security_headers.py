"""A Content-Security-Policy (no inline code without the request's nonce) and a Permissions-Policy on every
kind of response: the admin, the API and the docs."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.django_db


def _csp(response) -> dict[str, str]:
    return {
        part.strip().split(" ", 1)[0]: part.strip().partition(" ")[2]
        for part in response["Content-Security-Policy"].split(";")
        if part.strip()
    }


PAGES = {"admin": "/admin/", "login": "/admin/login/", "api": "/api/v1/prompts", "docs": "/api/docs/",
         "schema": "/api/schema/"}  # fmt: skip


@pytest.fixture(params=sorted(PAGES))
def response(request, client, superuser, settings):
    settings.TOLLGATE_API_DOCS_PUBLIC = True
    if request.param != "login":
        client.force_login(superuser)
    return client.get(PAGES[request.param])


def test_every_response_carries_a_strict_content_security_policy(response):
    policy = _csp(response)

    assert policy["default-src"] == "'self'"
    assert policy["script-src"].startswith("'self'")
    assert "'unsafe-inline'" not in response["Content-Security-Policy"]
    assert "'unsafe-eval'" not in response["Content-Security-Policy"]
    assert policy["object-src"] == "'none'"
    assert policy["frame-ancestors"] == "'none'"
    features = dict(part.strip().split("=", 1) for part in response["Permissions-Policy"].split(",") if part.strip())
    for feature in ("camera", "microphone", "geolocation", "payment", "usb"):
        assert features[feature] == "()"


def test_an_inline_style_carries_the_nonce_of_its_response(client, superuser):
    client.force_login(superuser)
    page = client.get("/admin/")
    html = page.content.decode()
    nonces = set(re.findall(r'<style nonce="([^"]+)"', html))

    assert len(nonces) == 1
    assert f"'nonce-{nonces.pop()}'" in _csp(page)["style-src"]
    assert 'style="' not in html
