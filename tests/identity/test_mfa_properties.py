"""Attacks on the gate of two-factor authentication, generated: any path under the admin, any method, from
a session of an approver that signed in with a password alone never reaches anything but sign-in,
sign-out, verification and enrolment, and changes nothing; and no wrong code verifies a session."""

from __future__ import annotations

import time
from binascii import unhexlify

import pytest
import time_machine
from django.contrib.auth.models import User
from django.test import Client
from django_otp.oath import TOTP
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audit.models import AuditEvent
from core import permission_matrix as matrix
from identity import mfa
from prompts.models import PromptVersion
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
OPEN = {"/admin/login/", "/admin/logout/", "/admin/mfa/verify/", "/admin/mfa/enrol/"}
METHODS = st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"])
SEGMENT = st.one_of(
    st.sampled_from(
        [
            "prompts", "promptversion", "do", "approve", "release", "keys", "providerkey", "rotate", "revoke",
            "auth", "user", "mfa", "enrol", "verify", "login", "logout", "password_change", "jsi18n",
            "autocomplete", "1", "2", "change", "delete", "..", ".", "", "%2e%2e", "mfa%2fverify", "MFA",
            "history", "identity", "accessrequest", "decide", "audit", "evidence", "r", "add",
        ]
    ),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_.%~;", max_size=12),
)  # fmt: skip


class _AnyId(dict):
    def __missing__(self, key: str) -> str:
        return "1"


# Every page of the admin (core/permission_matrix.py, placeholders as id 1), and generated paths around them.
KNOWN = sorted({template.format_map(_AnyId()) for template in matrix.ADMIN_PAGES} - OPEN)
PATHS = st.one_of(
    st.sampled_from(KNOWN),
    st.builds(
        lambda parts, slash: "/admin/" + "/".join(parts) + ("/" if slash else ""),
        st.lists(SEGMENT, max_size=5),
        st.booleans(),
    ),
)


def password_client(user: User) -> Client:
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    return client


def _assert_held(response, path: str, allowed_target: str) -> None:
    # The path as the application saw it: "%2f" in the generated one is a "/" there.
    if response.wsgi_request.path in OPEN:
        return
    assert response.status_code == 302, (path, response.status_code)
    assert response["Location"].startswith(allowed_target), (path, response["Location"])


@pytest.mark.parametrize("enrolled", [False, True], ids=["not enrolled", "enrolled, not verified"])
def test_an_unverified_session_reaches_nothing_but_the_open_pages(approver, in_review, enrolled):
    if enrolled:
        TOTPDevice.objects.create(user=approver, name="phone", confirmed=True)
    target = "/admin/mfa/verify/" if enrolled else "/admin/mfa/enrol/"
    last = AuditEvent.objects.order_by("-sequence").values_list("sequence", flat=True).first() or 0

    @PROPERTY
    @given(path=PATHS, method=METHODS)
    def attack(path: str, method: str) -> None:
        client = password_client(approver)
        response = client.generic(
            method, path, data="note=fine&reason=x", content_type="application/x-www-form-urlencoded"
        )
        _assert_held(response, path, target)

    attack()
    # And every page of the admin, by both methods, whatever the draw.
    client = password_client(approver)
    for path in KNOWN:
        for method in ("GET", "POST"):
            _assert_held(client.generic(method, path, data="note=fine"), path, target)
    # Nothing was approved, or changed at all: the trail holds sign-ins and sign-outs only.
    assert PromptVersion.objects.get(pk=in_review.pk).status == "in_review"
    assert set(AuditEvent.objects.filter(sequence__gt=last).values_list("action", flat=True)) <= {
        "auth.login",
        "auth.logout",
    }


# A code of the wrong shape, a near miss of the right one, or a recovery code of someone else.
CODES = st.one_of(
    st.text(max_size=20),
    st.text(alphabet="0123456789", min_size=6, max_size=6),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz234567", min_size=8, max_size=8),
)


def test_no_wrong_code_verifies_a_session(approver, outsider):
    device = TOTPDevice.objects.create(user=approver, name="phone", confirmed=True)
    recovery = StaticDevice.objects.create(user=approver, name="codes", confirmed=True)
    StaticToken.objects.create(device=recovery, token="aaaabbbb")
    others = StaticDevice.objects.create(user=outsider, name="codes", confirmed=True)
    StaticToken.objects.create(device=others, token="ccccdddd")
    now = time.time()
    totp = TOTP(unhexlify(device.key))
    valid = set()
    for drift in (-30, 0, 30):
        totp.time = now + drift
        valid.add(f"{totp.token():06d}")

    @PROPERTY
    @given(code=CODES)
    def attack(code: str) -> None:
        normal = mfa.normalized_token(code)
        if normal in valid or normal == "aaaabbbb":
            return
        TOTPDevice.objects.filter(pk=device.pk).update(throttling_failure_count=0)
        StaticDevice.objects.filter(pk=recovery.pk).update(throttling_failure_count=0)
        assert mfa.mfa_verify(user=approver, token=code).device is None

    with time_machine.travel(now, tick=False):
        attack()
    assert StaticToken.objects.filter(token="ccccdddd").exists()
