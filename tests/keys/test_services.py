"""Provider keys and clients: one active key per environment, rotation, revocation, caps, audit."""

from __future__ import annotations

from decimal import Decimal

import pytest
import time_machine
from django.db import IntegrityError, transaction

from audit.models import AuditEvent
from core.errors import KeyOperationRefused, ReasonRequired, RoleRequired
from keys import services
from keys.models import KeyStatus, ProviderKey
from keys.selectors import active_provider_key

pytestmark = pytest.mark.django_db

NEW_SECRET = "sk-ant-api03-the-new-rotated-secret-value-0123456789"


def test_one_active_key_per_environment(provider_key, custodian):
    with pytest.raises(KeyOperationRefused, match="rotate it instead"):
        services.provider_key_create(
            actor=custodian,
            environment="production",
            label="second",
            secret=NEW_SECRET,
            owner=custodian,
            monthly_cap_usd=Decimal(1),
        )
    with pytest.raises(IntegrityError), transaction.atomic():
        ProviderKey.objects.create(
            environment="production", label="sneaky", owner=custodian, created_by=custodian, monthly_cap_usd=1
        )


def test_rotation_with_a_grace_period_keeps_the_old_key_retiring(provider_key, custodian):
    new = services.provider_key_rotate(
        actor=custodian, key=provider_key, new_secret=NEW_SECRET, grace_hours=2, reason="quarterly rotation"
    )

    old = ProviderKey.objects.get(pk=provider_key.pk)
    assert (old.status, new.status) == (KeyStatus.RETIRING, KeyStatus.ACTIVE)
    assert active_provider_key(environment="production") == new
    assert services.provider_key_secret(key=new) == NEW_SECRET
    assert (new.monthly_cap_usd, new.owner, new.label) == (old.monthly_cap_usd, old.owner, old.label)
    event = AuditEvent.objects.get(action="provider_key.rotate")
    assert event.reason == "quarterly rotation"
    assert event.changes["replaces"]["last_four"] == old.last_four


def test_the_grace_period_ends_with_revocation(provider_key, custodian):
    services.provider_key_rotate(actor=custodian, key=provider_key, new_secret=NEW_SECRET, grace_hours=2, reason="r")

    with time_machine.travel("2099-01-01", tick=False):
        assert services.provider_keys_expire_grace() == 1

    assert ProviderKey.objects.get(pk=provider_key.pk).status == KeyStatus.REVOKED


def test_rotation_without_grace_revokes_the_old_key_at_once(provider_key, custodian):
    services.provider_key_rotate(actor=custodian, key=provider_key, new_secret=NEW_SECRET, reason="leaked")

    assert ProviderKey.objects.get(pk=provider_key.pk).status == KeyStatus.REVOKED


def test_rotating_to_the_same_secret_is_refused(provider_key, custodian):
    from tests.keys.conftest import CANARY_SECRET

    with pytest.raises(KeyOperationRefused, match="same as the old"):
        services.provider_key_rotate(actor=custodian, key=provider_key, new_secret=CANARY_SECRET, reason="r")
    assert ProviderKey.objects.get(pk=provider_key.pk).status == KeyStatus.ACTIVE


def test_cap_changes_are_audited_with_before_and_after(provider_key, custodian):
    services.provider_key_update(
        actor=custodian, key=provider_key, reason="budget cut", monthly_cap_usd=Decimal("250.00")
    )

    event = AuditEvent.objects.get(action="provider_key.cap_change")
    assert event.changes["monthly_cap_usd"] == ["500.00", "250.00"]
    assert event.reason == "budget cut"
    assert ProviderKey.objects.get(pk=provider_key.pk).history.first().history_change_reason == "budget cut"


def test_every_key_and_client_change_is_audited(provider_key, custodian, api_client):
    token, _ = services.api_token_issue(actor=custodian, client=api_client, label="t")
    services.api_token_revoke(actor=custodian, token=token, reason="r")
    services.api_client_update(actor=custodian, client=api_client, reason="more", monthly_cap_usd=Decimal(5))
    services.provider_key_revoke(actor=custodian, key=provider_key, reason="offboarding")

    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert actions >= {
        "provider_key.create",
        "provider_key.revoke",
        "api_client.create",
        "api_client.cap_change",
        "api_token.issue",
        "api_token.revoke",
    }


@pytest.mark.parametrize("persona", ["author", "approver", "auditor", "outsider"])
def test_only_custodians_manage_keys_and_clients(request, persona, provider_key, api_client):
    actor = request.getfixturevalue(persona)

    with pytest.raises(RoleRequired):
        services.provider_key_revoke(actor=actor, key=provider_key, reason="x")
    with pytest.raises(RoleRequired):
        services.api_token_issue(actor=actor, client=api_client, label="x")
    with pytest.raises(RoleRequired):
        services.api_client_create(actor=actor, name="x", environment="staging", owner=actor)


def test_revoking_needs_a_reason(provider_key, custodian):
    with pytest.raises(ReasonRequired):
        services.provider_key_revoke(actor=custodian, key=provider_key, reason=" ")
