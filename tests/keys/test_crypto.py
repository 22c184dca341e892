"""Secrets at rest: bound to their row and environment, re-encryptable, and loud when tampered with."""

from __future__ import annotations

import base64
from decimal import Decimal

import pytest
from django.core.management import call_command

from audit.models import AuditEvent
from core.env import parse_encryption_keys
from keys import services
from keys.crypto import DecryptionFailed
from keys.models import ApiClient, ProviderKey
from tests.keys.conftest import CANARY_SECRET

pytestmark = pytest.mark.django_db

NEW_PRIMARY = "k2:" + base64.b64encode(b"n" * 32).decode()


def test_a_key_decrypts_to_its_secret(provider_key):
    assert services.provider_key_secret(key=provider_key) == CANARY_SECRET
    assert provider_key.last_four == CANARY_SECRET[-4:]
    assert CANARY_SECRET not in provider_key.secret_ciphertext


def test_a_ciphertext_copied_to_another_row_does_not_decrypt(provider_key, custodian):
    other = services.provider_key_create(
        actor=custodian,
        environment="staging",
        label="Staging",
        secret="sk-ant-api03-another-staging-secret-0000000",
        owner=custodian,
        monthly_cap_usd=Decimal(10),
    )
    ProviderKey.objects.filter(pk=other.pk).update(
        secret_ciphertext=provider_key.secret_ciphertext, secret_kek_id=provider_key.secret_kek_id
    )

    with pytest.raises(DecryptionFailed):
        services.provider_key_secret(key=ProviderKey.objects.get(pk=other.pk))


def test_a_ciphertext_moved_to_another_environment_does_not_decrypt(provider_key):
    ProviderKey.objects.filter(pk=provider_key.pk).update(environment="development")

    with pytest.raises(DecryptionFailed):
        services.provider_key_secret(key=ProviderKey.objects.get(pk=provider_key.pk))


def test_a_corrupted_ciphertext_raises_and_is_recorded(provider_key):
    raw = bytearray(base64.b64decode(provider_key.secret_ciphertext))
    raw[-1] ^= 0x01
    ProviderKey.objects.filter(pk=provider_key.pk).update(secret_ciphertext=base64.b64encode(bytes(raw)).decode())

    with pytest.raises(DecryptionFailed):
        services.provider_key_secret(key=ProviderKey.objects.get(pk=provider_key.pk))

    event = AuditEvent.objects.get(action="security.decryption_failed")
    assert event.object_id == str(provider_key.pk)


def test_reencrypt_moves_every_secret_to_the_new_primary(provider_key, api_client, settings):
    webhook_secret = services.api_client_webhook_secret(client=api_client)
    old_keys = settings.TOLLGATE_ENCRYPTION_KEYS
    settings.TOLLGATE_ENCRYPTION_KEYS = parse_encryption_keys(NEW_PRIMARY) + old_keys

    call_command("reencrypt_secrets")

    assert set(ProviderKey.objects.values_list("secret_kek_id", flat=True)) == {"k2"}
    assert set(ApiClient.objects.values_list("webhook_secret_kek_id", flat=True)) == {"k2"}
    # The old key-encryption key can now be removed.
    settings.TOLLGATE_ENCRYPTION_KEYS = parse_encryption_keys(NEW_PRIMARY)
    assert services.provider_key_secret(key=ProviderKey.objects.get(pk=provider_key.pk)) == CANARY_SECRET
    assert services.api_client_webhook_secret(client=ApiClient.objects.get(pk=api_client.pk)) == webhook_secret
    assert AuditEvent.objects.filter(action="secrets.reencrypt").count() == 1


def test_a_missing_key_encryption_key_is_a_failure_not_a_fallback(provider_key, settings):
    settings.TOLLGATE_ENCRYPTION_KEYS = parse_encryption_keys(NEW_PRIMARY)

    with pytest.raises(DecryptionFailed, match="not configured"):
        services.provider_key_secret(key=provider_key)
