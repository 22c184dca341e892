"""Canary secrets planted through the admin never reach the database's plaintext, a page, the history,
the audit trail, a log line or an API error."""

from __future__ import annotations

import logging
import re

import pytest
from django.db import connection
from rest_framework.test import APIClient as HttpClient

from keys import services
from keys.models import ApiClient, ProviderKey
from keys.signing import signed_headers
from tests.keys.conftest import CANARY_SECRET

pytestmark = pytest.mark.django_db


def every_stored_value() -> str:
    """Every cell of every table, as text."""
    chunks: list[str] = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608  (names from introspection)
            chunks.extend(repr(row) for row in cursor.fetchall())
    return "\n".join(chunks)


@pytest.fixture
def planted(client, custodian, caplog):
    """A key, a client with its webhook secret and a token, all made through the admin."""
    caplog.set_level(logging.DEBUG)
    client.force_login(custodian)
    client.post(
        "/admin/keys/providerkey/add/",
        {
            "environment": "production",
            "label": "Prod",
            "secret": CANARY_SECRET,
            "owner": custodian.pk,
            "base_url": "https://api.anthropic.com",
            "monthly_cap_usd": "10",
            "rotation_period_days": "90",
            "alert_threshold_percent": "80",
        },
    )
    created = client.post(
        "/admin/keys/apiclient/add/",
        {
            "name": "svc",
            "environment": "production",
            "owner": custodian.pk,
            "all_prompts": "on",
            "rate_limit_per_minute": "60",
        },
    )
    webhook_secret = re.search(r"whsec_[A-Za-z0-9_-]+", created.content.decode()).group(0)
    api_client = ApiClient.objects.get()
    issued = client.post(f"/admin/keys/apiclient/{api_client.pk}/tokens/new/", {"label": "svc prod"})
    token = re.search(r"tg_prd_[0-9A-Za-z]{38}", issued.content.decode()).group(0)
    HttpClient().get("/api/v1/prompts", HTTP_AUTHORIZATION=f"Bearer {token}")
    generated = client.post(f"/admin/keys/apiclient/{api_client.pk}/signing-secret/", {"reason": "sign"})
    signing_secret = re.search(r"tgsig_[A-Za-z0-9_-]{43}", generated.content.decode()).group(0)
    services.api_client_update(actor=custodian, client=api_client, reason="sign", signature_required=True)
    statuses: list[str] = []
    for secret in (signing_secret, "tgsig_wrong"):  # one request signed right, one wrong: both logged
        headers = signed_headers(secret, method="GET", path="/api/v1/prompts", query="", body=b"")
        response = HttpClient().get(
            "/api/v1/prompts",
            HTTP_AUTHORIZATION=f"Bearer {token}",
            **{"HTTP_" + name.upper().replace("-", "_"): value for name, value in headers.items()},
        )
        statuses.append(response.json()["code"])
    # The client was made without scopes: the signed request passes its signature, then meets its scope.
    assert statuses == ["scope_required", "signature_invalid"]
    return {
        "provider key": CANARY_SECRET,
        "webhook secret": webhook_secret,
        "token": token,
        "signing secret": signing_secret,
    }


def test_secrets_are_not_in_the_database_in_plaintext(planted):
    stored = every_stored_value()

    for name, secret in planted.items():
        assert secret not in stored, name


def test_secrets_are_not_on_any_admin_page(client, planted):
    key, api_client = ProviderKey.objects.get(), ApiClient.objects.get()
    pages = [
        "/admin/keys/providerkey/",
        f"/admin/keys/providerkey/{key.pk}/change/",
        f"/admin/keys/providerkey/{key.pk}/history/",
        "/admin/keys/apiclient/",
        f"/admin/keys/apiclient/{api_client.pk}/change/",
        f"/admin/keys/apiclient/{api_client.pk}/history/",
        "/admin/keys/apitoken/",
        "/admin/audit/auditevent/",
    ]
    for page in pages:
        html = client.get(page).content.decode()
        for name, secret in planted.items():
            assert secret not in html, f"{name} on {page}"


def test_secrets_are_not_in_the_logs(planted, caplog):
    records = caplog.get_records("setup")  # everything logged while the secrets were planted
    logged = "\n".join(record.getMessage() + repr(record.__dict__) for record in records)

    assert logged  # the requests above were logged
    for name, secret in planted.items():
        assert secret not in logged, name


def test_api_errors_do_not_echo_what_was_sent(planted):
    token = planted["token"]
    bad_checksum = token[:-1] + ("a" if token[-1] != "a" else "b")

    for credential in (CANARY_SECRET, bad_checksum, "tg_prd_" + "x" * 38):
        response = HttpClient().get("/api/v1/prompts", HTTP_AUTHORIZATION=f"Bearer {credential}")
        assert response.status_code == 401
        assert credential not in response.content.decode()
