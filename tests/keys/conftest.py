from __future__ import annotations

from decimal import Decimal

import pytest

from keys import services

CANARY_SECRET = "sk-ant-api03-CANARY-5f7c1e9a2b8d4c6e0a1f3b5d7e9c2a4b6d8f0e1c3a5b"


@pytest.fixture
def provider_key(custodian):
    return services.provider_key_create(
        actor=custodian,
        environment="production",
        label="Production key",
        secret=CANARY_SECRET,
        owner=custodian,
        monthly_cap_usd=Decimal("500.00"),
    )


@pytest.fixture
def api_client(custodian):
    client, _ = services.api_client_create(
        actor=custodian, name="billing-service", environment="production", owner=custodian, all_prompts=True
    )
    return client


@pytest.fixture
def issued(custodian, api_client):
    """(token row, plaintext)"""
    return services.api_token_issue(actor=custodian, client=api_client, label="billing prod")
