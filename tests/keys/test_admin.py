"""Keys in the admin: custodians manage, auditors read, everyone else is kept out; secrets show once."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest

from keys.models import ApiClient, ApiToken, ProviderKey
from keys.services import provider_key_secret
from tests.keys.conftest import CANARY_SECRET

pytestmark = pytest.mark.django_db

KEY_FORM = {
    "environment": "staging",
    "label": "Staging key",
    "secret": CANARY_SECRET,
    "base_url": "https://api.anthropic.com",
    "monthly_cap_usd": "100.00",
    "daily_cap_usd": "",
    "rotation_period_days": "90",
    "alert_threshold_percent": "80",
}


def add_key(client, owner):
    return client.post("/admin/keys/providerkey/add/", {**KEY_FORM, "owner": owner.pk})


@pytest.mark.parametrize(
    ("persona", "list_status", "can_add"),
    [
        ("custodian", 200, True),
        ("auditor", 200, False),
        ("author", 403, False),
        ("approver", 403, False),
        ("outsider", 403, False),
    ],
)
def test_who_may_see_and_manage_keys(client, request, persona, list_status, can_add, custodian):
    client.force_login(request.getfixturevalue(persona))

    assert client.get("/admin/keys/providerkey/").status_code == list_status
    assert client.get("/admin/keys/apiclient/").status_code == list_status
    add_key(client, custodian)

    assert ProviderKey.objects.exists() is can_add


def test_a_custodian_adds_a_key_and_never_sees_it_again(client, custodian):
    client.force_login(custodian)

    response = add_key(client, custodian)

    key = ProviderKey.objects.get()
    assert response.status_code == 302
    assert provider_key_secret(key=key) == CANARY_SECRET
    for page in (
        "/admin/keys/providerkey/",
        f"/admin/keys/providerkey/{key.pk}/change/",
        f"/admin/keys/providerkey/{key.pk}/history/",
    ):
        html = client.get(page).content.decode()
        assert CANARY_SECRET not in html
        assert f"…{CANARY_SECRET[-4:]}" in html or page.endswith("history/")


def test_issuing_a_token_shows_it_once(client, custodian, api_client):
    client.force_login(custodian)

    response = client.post(f"/admin/keys/apiclient/{api_client.pk}/tokens/new/", {"label": "ci"})

    token = re.search(r"tg_prd_[0-9A-Za-z]{38}", response.content.decode()).group(0)
    assert "no-store" in response["Cache-Control"]
    assert ApiToken.objects.get(client=api_client).label == "ci"
    assert token not in client.get(f"/admin/keys/apiclient/{api_client.pk}/change/").content.decode()
    assert token not in client.get("/admin/keys/apitoken/").content.decode()


def test_creating_a_client_shows_its_webhook_secret_once(client, custodian):
    client.force_login(custodian)

    response = client.post(
        "/admin/keys/apiclient/add/",
        {
            "name": "search-service",
            "team": "search",
            "environment": "development",
            "owner": custodian.pk,
            "all_prompts": "on",
            "allowed_prompts": "",
            "rate_limit_per_minute": "120",
            "monthly_cap_usd": "",
            "expires_at": "",
        },
    )

    secret = re.search(r"whsec_[A-Za-z0-9_-]+", response.content.decode()).group(0)
    created = ApiClient.objects.get(name="search-service")
    assert secret not in client.get(f"/admin/keys/apiclient/{created.pk}/change/").content.decode()


def test_a_custodian_rotates_a_key_with_a_grace_period(client, custodian, provider_key):
    client.force_login(custodian)

    client.post(
        f"/admin/keys/providerkey/{provider_key.pk}/rotate/",
        {"new_secret": "sk-ant-api03-rotated-in-the-admin-000000000000", "grace_hours": "1", "reason": "quarterly"},
    )

    statuses = dict(ProviderKey.objects.values_list("pk", "status"))
    assert statuses[provider_key.pk] == "retiring"
    assert sorted(statuses.values()) == ["active", "retiring"]


def test_a_custodian_deactivates_a_client(client, custodian, api_client):
    client.force_login(custodian)

    client.post(f"/admin/keys/apiclient/{api_client.pk}/active/", {"reason": "team disbanded"})

    assert ApiClient.objects.get(pk=api_client.pk).is_active is False


def test_the_admin_warns_about_keys_due_for_rotation(client, custodian, provider_key):
    ProviderKey.objects.filter(pk=provider_key.pk).update(rotation_period_days=5)
    client.force_login(custodian)

    html = client.get("/admin/").content.decode()

    assert 'id="rotation-banner"' in html
    assert "due soon for rotation" in html


def test_the_key_list_shows_this_months_spend_against_the_cap(client, custodian, provider_key):
    from usage.services import Cap, spend_settle
    from usage.settlement import spend_reserve

    cap = Cap(scope="provider_key", scope_id=provider_key.pk, period="month", limit_usd=Decimal(500), label="k")
    spend_settle(reservation=spend_reserve(request_id="r", caps=[cap], amount=Decimal(1)), actual=Decimal("125.5"))
    client.force_login(custodian)

    assert "125.50 / 500.00 (25 %)" in client.get("/admin/keys/providerkey/").content.decode()


def change_client(client, api_client, **fields):
    data = {
        "name": api_client.name,
        "team": api_client.team,
        "owner": api_client.owner_id,
        "all_prompts": "on",
        "allowed_prompts": "",
        "rate_limit_per_minute": str(api_client.rate_limit_per_minute),
        "monthly_cap_usd": "",
        "expires_at": "",
        "freeform_models": "",
        "freeform_max_tokens": "4096",
        "scopes": list(api_client.scopes),
        "networks": "",
        "reason": "harden the client",
        **fields,
    }
    return client.post(
        f"/admin/keys/apiclient/{api_client.pk}/change/", {k: v for k, v in data.items() if v is not None}
    )


def test_a_custodian_generates_a_signing_secret_and_then_requires_signatures(client, custodian, api_client):
    client.force_login(custodian)
    page = f"/admin/keys/apiclient/{api_client.pk}/change/"
    assert "Generate signing secret" in client.get(page).content.decode()

    refused = change_client(client, api_client, signature_required="on")
    assert refused.status_code == 200  # the form again, with the error
    assert "Generate the client" in refused.content.decode()
    assert ApiClient.objects.get(pk=api_client.pk).signature_required is False

    assert "Generate secret" in client.get(f"/admin/keys/apiclient/{api_client.pk}/signing-secret/").content.decode()
    response = client.post(f"/admin/keys/apiclient/{api_client.pk}/signing-secret/", {"reason": "sign requests"})
    secret = re.search(r"tgsig_[A-Za-z0-9_-]{43}", response.content.decode()).group(0)
    assert "no-store" in response["Cache-Control"]

    assert change_client(client, api_client, signature_required="on").status_code == 302
    changed = ApiClient.objects.get(pk=api_client.pk)
    assert changed.signature_required is True
    html = client.get(page).content.decode()
    assert secret not in html
    assert "Rotate signing secret" in html
    assert f"set {changed.signing_secret_created_at:%Y-%m-%d}" in html
    assert secret not in client.get(f"{page.removesuffix('change/')}history/").content.decode()
