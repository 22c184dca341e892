"""Rotating the audit signing key: the hours signed with a retired key still verify under it, a retired key
cannot vouch for an hour after its last one, and a rotation without listing the old key stops the
checkpoints loudly instead of writing a chain that no longer verifies."""

from __future__ import annotations

import base64
import io
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from audit.chain import KeyRing, checkpoint_payload, public_key_raw
from audit.models import AuditCheckpoint, AuditEvent
from audit.services import (
    AuditSigningKeyMismatch,
    audit_chain_verify,
    audit_checkpoints_write,
    audit_event_record,
)
from core.env import parse_retired_public_keys
from tests.audit.test_chain import sql

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 2, 10, 15, tzinfo=UTC)
OLD_LAST_HOUR = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)  # the old key signs the checkpoints to 11:00 and 12:00


def _events(at: datetime, count: int = 2) -> None:
    with time_machine.travel(at, tick=False):
        for number in range(count):
            audit_event_record(action="test.change", actor_repr="system", changes={"n": number}, reason="why")


def _checkpoints(at: datetime) -> list[AuditCheckpoint]:
    with time_machine.travel(at, tick=False):
        return audit_checkpoints_write()


def _rotate(settings, old: Ed25519PrivateKey, new: Ed25519PrivateKey, until: datetime) -> None:
    settings.TOLLGATE_AUDIT_SIGNING_KEY = new
    settings.TOLLGATE_AUDIT_RETIRED_PUBLIC_KEYS = ((until, old.public_key()),)


@pytest.fixture
def old_key(settings) -> Ed25519PrivateKey:
    key = Ed25519PrivateKey.generate()
    settings.TOLLGATE_AUDIT_SIGNING_KEY = key
    settings.TOLLGATE_AUDIT_RETIRED_PUBLIC_KEYS = ()
    return key


@pytest.fixture
def rotated(empty_trail, old_key, settings) -> Ed25519PrivateKey:
    """Events and checkpoints under the old key to 12:00, then the key rotated and more of both under the new."""
    _events(T0)
    assert len(_checkpoints(datetime(2026, 11, 2, 12, 5, tzinfo=UTC))) == 2
    new = Ed25519PrivateKey.generate()
    _rotate(settings, old_key, new, OLD_LAST_HOUR)
    _events(datetime(2026, 11, 2, 13, 20, tzinfo=UTC))
    _checkpoints(datetime(2026, 11, 2, 15, 5, tzinfo=UTC))
    return new


def test_a_rotated_trail_verifies_the_old_hours_under_the_retired_key(rotated):
    with time_machine.travel(datetime(2026, 11, 2, 15, 10, tzinfo=UTC), tick=False):
        report = audit_chain_verify()

    assert report.problem is None
    assert report.checkpoints == 5


def test_the_change_of_key_is_recorded_once_in_the_trail(rotated, old_key):
    changes = list(AuditEvent.objects.filter(action="audit.signing_key_change"))

    assert len(changes) == 1
    assert changes[0].changes["retired_key"] == public_key_raw(old_key.public_key())
    assert changes[0].changes["current_key"] == public_key_raw(rotated.public_key())
    assert changes[0].changes["last_hour_of_retired_key"] == "2026-11-02T12:00:00.000000Z"


def test_without_the_retired_key_the_old_hours_fail_verification(rotated, settings):
    settings.TOLLGATE_AUDIT_RETIRED_PUBLIC_KEYS = ()
    with time_machine.travel(datetime(2026, 11, 2, 15, 10, tzinfo=UTC), tick=False):
        report = audit_chain_verify()

    assert report.problem is not None
    assert "signature does not verify" in report.problem.reason


def test_a_leaked_retired_key_cannot_sign_an_hour_after_its_last(rotated, old_key, anchor_dir):
    """Someone with the old private key and database access replaces the newest checkpoint row with one they
    signed: the ring gives that hour to the current key, so it fails (and so does its anchor's comparison)."""
    newest = AuditCheckpoint.objects.order_by("-period_end").first()
    assert newest is not None
    forged = sign_with(old_key, newest)
    sql(f"UPDATE audit_auditcheckpoint SET signature = '{forged}' WHERE id = {newest.pk}")  # noqa: S608
    with time_machine.travel(datetime(2026, 11, 2, 15, 10, tzinfo=UTC), tick=False):
        report = audit_chain_verify()

    assert report.problem is not None
    assert "its signature does not verify" in report.problem.reason  # not merely "differs from its anchor"


def sign_with(key: Ed25519PrivateKey, checkpoint: AuditCheckpoint) -> str:
    payload = checkpoint_payload(
        period_end=checkpoint.period_end,
        first_sequence=checkpoint.first_sequence,
        last_sequence=checkpoint.last_sequence,
        count=checkpoint.count,
        last_hash=checkpoint.last_hash,
        previous_signature=checkpoint.previous_signature,
    )
    return base64.b64encode(key.sign(payload)).decode()


def test_a_rotation_that_forgets_the_old_key_stops_the_checkpoints_loudly(empty_trail, old_key, settings, caplog):
    _events(T0)
    _checkpoints(datetime(2026, 11, 2, 12, 5, tzinfo=UTC))
    settings.TOLLGATE_AUDIT_SIGNING_KEY = Ed25519PrivateKey.generate()  # old key not listed

    with pytest.raises(AuditSigningKeyMismatch):
        _checkpoints(datetime(2026, 11, 2, 14, 5, tzinfo=UTC))

    assert AuditCheckpoint.objects.count() == 2  # nothing signed that would not verify
    assert AuditEvent.objects.filter(action="audit.signing_key_mismatch").count() == 1
    assert "Audit checkpoints stopped" in caplog.text


def test_retiring_a_key_for_hours_it_never_signed_stops_the_checkpoints(empty_trail, old_key, settings):
    _events(T0)
    _checkpoints(datetime(2026, 11, 2, 12, 5, tzinfo=UTC))
    _rotate(settings, old_key, Ed25519PrivateKey.generate(), OLD_LAST_HOUR + timedelta(hours=3))

    with pytest.raises(AuditSigningKeyMismatch):
        _checkpoints(datetime(2026, 11, 2, 14, 5, tzinfo=UTC))


def test_verify_command_and_public_key_raw(rotated):
    out = io.StringIO()
    call_command("audit_public_key", "--raw", stdout=out)
    assert out.getvalue() == public_key_raw(rotated.public_key()) + "\n"

    out = io.StringIO()
    with time_machine.travel(datetime(2026, 11, 2, 15, 10, tzinfo=UTC), tick=False):
        call_command("verify_audit_chain", stdout=out)
    assert out.getvalue().startswith("OK: 5 events (#1–#5) chained, 5 signed checkpoints verified")  # 4 + the change


def test_the_setting_parses_raw_and_der_keys_oldest_first():
    one, two = Ed25519PrivateKey.generate().public_key(), Ed25519PrivateKey.generate().public_key()
    der = base64.b64encode(
        two.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    ).decode()
    parsed = parse_retired_public_keys(f"2026-01-01T10:00Z={public_key_raw(one)}, 2026-06-01T00:00Z={der}")

    assert [until.isoformat() for until, _ in parsed] == ["2026-01-01T10:00:00+00:00", "2026-06-01T00:00:00+00:00"]
    assert public_key_raw(parsed[1][1]) == public_key_raw(two)


@hypothesis_settings(max_examples=60, deadline=None)
@given(st.text(max_size=80))
def test_any_malformed_setting_is_refused_naming_the_setting(raw):
    if not any(part.strip() for part in raw.split(",")):
        assert parse_retired_public_keys(raw) == ()
    else:  # random text is never a valid entry
        with pytest.raises(ImproperlyConfigured, match="TOLLGATE_AUDIT_RETIRED_PUBLIC_KEYS"):
            parse_retired_public_keys(raw)


@hypothesis_settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=1000), min_size=1, max_size=5, unique=True), st.integers(0, 1200))
def test_the_ring_gives_each_hour_the_first_key_whose_last_hour_is_not_before_it(hours, probe):
    base = datetime(2026, 1, 1, tzinfo=UTC)
    untils = sorted(base + timedelta(hours=h) for h in hours)
    keys = [Ed25519PrivateKey.generate().public_key() for _ in untils]
    current = Ed25519PrivateKey.generate().public_key()
    ring = KeyRing(current, tuple(zip(untils, keys, strict=True)))
    moment = base + timedelta(hours=probe)

    expected = next((key for until, key in zip(untils, keys, strict=True) if moment <= until), current)
    assert ring.key_for(moment) is expected
    assert ring.key_for(moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")) is expected
