"""Two-factor authentication for the admin (docs/admin.md, Two-factor authentication): enrolling an
authenticator app (TOTP), recovery codes, verifying a session, removing and resetting devices.

Devices are django-otp's: a TOTP device per authenticator app and one static device holding the recovery
codes. Who must use them is core.mfa's policy; the gate is identity.middleware. Failed codes are throttled
per device by django-otp (each failure doubles the wait before the next attempt is even checked), and the
audit trail records a failure only when it was checked, so a guesser appends a number of events that grows
with the logarithm of the time spent guessing. Secrets (the TOTP key, the codes) never reach the trail.
"""

from __future__ import annotations

import secrets
from base64 import b32encode
from binascii import unhexlify
from dataclasses import dataclass
from typing import Any

import segno
from django.contrib.auth.models import User
from django.db import transaction
from django_otp import devices_for_user
from django_otp.models import Device
from django_otp.oath import TOTP
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from audit.services import audit_event_record
from core.context import current
from core.errors import MfaRefused, ReasonRequired, RoleRequired
from core.mfa import mfa_enrolled, session_verification_refusal
from identity.sessions import SessionEnd, sessions_end_others

AUTHENTICATOR_NAME = "Authenticator app"
RECOVERY_NAME = "Recovery codes"
RECOVERY_CODE_COUNT = 10
TOTP_DIGITS = 6
THROTTLE_FAILURES_CAP = 8


def _audit_subject(user: User) -> dict[str, Any]:
    return {"object_type": "auth.user", "object_id": str(user.pk), "object_repr": user.get_username()}


# --- enrolment --------------------------------------------------------------------------------------------


def totp_key_new() -> str:
    """A fresh TOTP secret (hex, 20 bytes), kept in the session until the first code confirms it."""
    return secrets.token_hex(20)


def totp_key_text(key: str) -> str:
    """The secret as people type it into an authenticator app: base32 in groups of four."""
    text = b32encode(unhexlify(key)).decode()
    return " ".join(text[i : i + 4] for i in range(0, len(text), 4))


def totp_config_url(*, user: User, key: str) -> str:
    return str(TOTPDevice(user=user, key=key, name=AUTHENTICATOR_NAME).config_url)


def qr_data_uri(text: str) -> str:
    """A QR code of `text` as an SVG data: URI, drawn here (the Content-Security-Policy allows data: images
    and nothing from elsewhere)."""
    return str(segno.make(text, error="m").svg_data_uri(scale=5, border=2))


def _totp_matches(key: str, token: str) -> int | None:
    """The time step `token` is the code of (one step of clock drift either way), or None."""
    if not (len(token) == TOTP_DIGITS and token.isdigit()):
        return None
    totp = TOTP(unhexlify(key), digits=TOTP_DIGITS)
    return totp.t() if totp.verify(int(token), tolerance=1) else None  # t() counts the drift found


def _recovery_codes_new(device: StaticDevice) -> list[str]:
    device.token_set.all().delete()
    codes = [StaticToken.random_token() for _ in range(RECOVERY_CODE_COUNT)]
    StaticToken.objects.bulk_create([StaticToken(device=device, token=code) for code in codes])
    return codes


@transaction.atomic
def mfa_totp_enrol(*, actor: User, key: str, token: str) -> tuple[TOTPDevice, list[str]]:
    """Confirm an authenticator app holding `key` with a code it shows, and return the device and the
    recovery codes (new ones when the person had none; else none, the old ones stay valid)."""
    User.objects.select_for_update().filter(pk=actor.pk).first()  # one enrolment at a time per person
    if TOTPDevice.objects.filter(user=actor, confirmed=True).exists():
        raise MfaRefused("An authenticator app is already enrolled: remove it first to enrol another.")
    if mfa_enrolled(actor) and (refusal := session_verification_refusal(actor)):
        raise refusal
    step = _totp_matches(key, normalized_token(token))
    if step is None:
        raise MfaRefused("That code does not match: check the app's clock and enter the code it shows now.")
    TOTPDevice.objects.filter(user=actor, confirmed=False).delete()
    device = TOTPDevice.objects.create(user=actor, name=AUTHENTICATOR_NAME, key=key, confirmed=True, last_t=step)
    codes: list[str] = []
    if not StaticDevice.objects.filter(user=actor).exists():
        recovery = StaticDevice.objects.create(user=actor, name=RECOVERY_NAME, confirmed=True)
        codes = _recovery_codes_new(recovery)
    audit_event_record(
        action="auth.mfa_enrol",
        actor=actor,
        changes={"device": "totp", "recovery_codes": len(codes)},
        **_audit_subject(actor),
    )
    return device, codes


@transaction.atomic
def mfa_recovery_codes_regenerate(*, actor: User) -> list[str]:
    """New recovery codes for a person with an authenticator app; the old ones stop working."""
    if not TOTPDevice.objects.filter(user=actor, confirmed=True).exists():
        raise MfaRefused("Enrol an authenticator app first: recovery codes stand in for it.")
    if refusal := session_verification_refusal(actor):
        raise refusal
    device, _ = StaticDevice.objects.get_or_create(user=actor, defaults={"name": RECOVERY_NAME, "confirmed": True})
    codes = _recovery_codes_new(device)
    audit_event_record(
        action="auth.mfa_recovery_codes_regenerate",
        actor=actor,
        changes={"recovery_codes": len(codes)},
        **_audit_subject(actor),
    )
    return codes


# --- verification -----------------------------------------------------------------------------------------


_TOKEN_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")


def normalized_token(token: str) -> str:
    """A code as typed, without spaces and in lower case; "" (matches nothing, never queried) when it holds
    anything no code does (a NUL, which PostgreSQL cannot even compare, among them)."""
    text = "".join(str(token or "").split()).lower()[:32]
    return text if set(text) <= _TOKEN_CHARACTERS else ""


@dataclass(frozen=True)
class Verification:
    """The outcome of a code: the device that accepted it, or why none did."""

    device: Device | None
    throttled: bool = False
    recovery_codes_left: int | None = None


def _device_kind(device: Device) -> str:
    return "totp" if isinstance(device, TOTPDevice) else "recovery_code"


def _throttle_cap(device: Device) -> None:
    """django-otp doubles a device's wait after each failure, without bound: whoever holds only the password
    could keep the owner out for days, one wrong code each time the wait ends. The wait stops doubling at
    2**(THROTTLE_FAILURES_CAP - 1) seconds (128): still at most ~675 guesses a day against the three codes
    in a million a step accepts, each guess an audit event (auth.mfa_failed)."""
    if getattr(device, "throttling_failure_count", 0) > THROTTLE_FAILURES_CAP:
        type(device).objects.filter(pk=device.pk).update(throttling_failure_count=THROTTLE_FAILURES_CAP)


def mfa_verify(*, user: User, token: str) -> Verification:
    """Check `token` (a code of the authenticator app, or a recovery code, which is then used up) against
    the person's devices of that kind. A device that failed recently is not even asked (throttled)."""
    token = normalized_token(token)
    kind = TOTPDevice if len(token) == TOTP_DIGITS and token.isdigit() else StaticDevice
    checked = throttled = False
    accepted: Device | None = None
    with transaction.atomic():  # the throttle's counts commit with the attempt, refused or not
        for device in devices_for_user(user, confirmed=True, for_verify=True):
            if not isinstance(device, kind):
                continue
            allowed, _ = device.verify_is_allowed()
            if not allowed:
                throttled = True
                continue
            checked = True
            if not token:  # no code could be this: a failure like any other, throttled alike
                device.throttle_increment()
            elif device.verify_token(token):
                accepted = device
                break
            _throttle_cap(device)
    if accepted is not None:
        left = None
        if isinstance(accepted, StaticDevice):
            left = accepted.token_set.count()
            audit_event_record(
                action="auth.mfa_recovery_code_use",
                actor=user,
                changes={"recovery_codes_left": left},
                **_audit_subject(user),
            )
        return Verification(device=accepted, recovery_codes_left=left)
    if checked:
        audit_event_record(
            action="auth.mfa_failed",
            actor=user,
            changes={"device": "totp" if kind is TOTPDevice else "recovery_code"},
            **_audit_subject(user),
        )
    return Verification(device=None, throttled=throttled and not checked)


# --- removal and reset ------------------------------------------------------------------------------------


def _devices_delete(user: User) -> list[str]:
    kinds = sorted({_device_kind(device) for device in devices_for_user(user, confirmed=None)})
    TOTPDevice.objects.filter(user=user).delete()
    StaticDevice.objects.filter(user=user).delete()
    return kinds


@transaction.atomic
def mfa_devices_remove(*, actor: User) -> list[str]:
    """Remove one's own authenticator app and recovery codes (from a verified session). Someone whose
    roles require a second factor is asked to enrol again at once."""
    if refusal := session_verification_refusal(actor):
        raise refusal
    kinds = _devices_delete(actor)
    if not kinds:
        raise MfaRefused("There is nothing to remove: no authenticator app is enrolled.")
    audit_event_record(action="auth.mfa_remove", actor=actor, changes={"devices": kinds}, **_audit_subject(actor))
    # A session elsewhere that knows only the password would otherwise be sent to enrolment next, and enrol
    # its own authenticator before the person does: every other session ends.
    request = getattr(current(), "request", None)
    own = getattr(getattr(request, "session", None), "session_key", None)
    sessions_end_others(actor=actor, subject=actor, keep_key=own, cause=SessionEnd.MFA_REMOVED)
    return kinds


@transaction.atomic
def mfa_devices_reset(*, actor: User, subject: User, reason: str) -> list[str]:
    """An administrator removes another person's devices (a lost phone, used-up codes): they enrol again
    at their next sign-in. Never one's own by this path, and always with a reason."""
    if not actor.is_superuser:
        raise RoleRequired("Resetting another person's two-factor authentication is for administrators.")
    if refusal := session_verification_refusal(actor):
        raise refusal
    if actor.pk == subject.pk:
        raise MfaRefused("Nobody resets their own two-factor authentication here: remove your devices yourself.")
    reason = (reason or "").strip()
    if not reason:
        raise ReasonRequired("Say why this person's devices are reset: it is kept in the audit trail.")
    kinds = _devices_delete(subject)
    audit_event_record(
        action="auth.mfa_reset", actor=actor, changes={"devices": kinds}, reason=reason, **_audit_subject(subject)
    )
    # A reset is for lost or stolen devices: the sessions of the person (a stolen laptop's among them) would
    # otherwise be sent to enrolment and enrol a device of their own choosing. They all end; the person
    # enrols again after signing in.
    sessions_end_others(actor=actor, subject=subject, keep_key=None, cause=SessionEnd.MFA_RESET)
    return kinds
