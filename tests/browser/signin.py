"""Signing in through the admin's pages, second factor included: a person who must use one enrols in the
browser (reading the secret off the enrolment page, as an authenticator app would) or, when enrolled,
enters the code their device shows now."""

from __future__ import annotations

import time
from base64 import b32decode
from binascii import hexlify, unhexlify

from django.contrib.auth.models import User
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from tests.factories import PASSWORD


def code_for(key_hex: str, *, after_step: int = -1) -> str:
    """The code an authenticator app holding `key_hex` shows, for a time step the device has not accepted
    yet (a code is accepted once): now, or the next step (within the accepted drift), or after waiting."""
    totp = TOTP(unhexlify(key_hex))
    while True:
        now = time.time()
        for offset in (0, 1):
            totp.time = now + offset * totp.step
            if totp.t() > after_step:
                return f"{totp.token():06d}"
        time.sleep(1)


def key_from_page(page) -> str:
    """The secret as the enrolment page shows it (base32 in groups), as hex."""
    text = page.inner_text("#mfa-secret").replace(" ", "")
    return hexlify(b32decode(text)).decode()


def second_factor(page, user: User) -> list[str]:
    """Complete the sign-in on the verification or enrolment page, if the admin asks; the recovery codes
    an enrolment showed."""
    if "/admin/mfa/enrol/" in page.url:
        page.fill("#id_code", code_for(key_from_page(page)))
        page.click("#mfa-submit")
        page.wait_for_selector("#mfa-recovery-codes")
        return [code.strip() for code in page.locator("#mfa-recovery-codes code").all_inner_texts()]
    if "/admin/mfa/verify/" in page.url:
        device = TOTPDevice.objects.get(user=user, confirmed=True)
        page.fill("#id_code", code_for(device.key, after_step=device.last_t))
        page.click("#mfa-submit")
        page.wait_for_url(lambda url: "/admin/mfa/" not in url)
    return []


def sign_in(page, base: str, user: User, *, second: bool = True) -> None:
    """Password first; then the second factor, unless `second` is false (the page is left where the admin
    sent it)."""
    page.goto(f"{base}/admin/login/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#user-tools")
    if second:
        second_factor(page, user)
