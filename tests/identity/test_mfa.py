"""Two-factor authentication of the admin: who must use it, enrolment, verification, recovery codes, the
gate's refusals (in the middleware and in the services), throttling, removal and an administrator's reset.

These tests sign in with a password (a real, unverified session) or with `force_login(verified=False)`,
and verify with codes computed from the device's key, as an authenticator app would.
"""

from __future__ import annotations

import time
from binascii import unhexlify

import pytest
import time_machine
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client, RequestFactory
from django_otp.oath import TOTP
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from audit.models import AuditEvent
from core.context import RequestContext, bound
from core.errors import MfaRefused, RoleRequired, VerificationRequired
from identity import mfa
from identity.mfa_views import PENDING_KEY
from prompts import services as prompt_services
from prompts.models import PromptVersion
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db

ENROL = "/admin/mfa/enrol/"
VERIFY = "/admin/mfa/verify/"


def password_client(user: User) -> Client:
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    return client


def code_for(key: str) -> str:
    return f"{TOTP(unhexlify(key)).token():06d}"


def enrol(client: Client) -> tuple[str, list[str]]:
    """Enrol through the pages: read the pending secret, answer with its current code; the key and codes."""
    assert client.get(ENROL).status_code == 200
    key = client.session[PENDING_KEY]
    response = client.post(ENROL, {"code": code_for(key)})
    assert response.status_code == 200, response.content
    return key, list(response.context["codes"])


def later(seconds: int, *, tick: bool = False) -> time_machine.travel:
    """Some seconds from now: a later time step of the authenticator app, or past a throttle's wait."""
    return time_machine.travel(time.time() + seconds, tick=tick)


def actions(name: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=name).order_by("sequence"))


# --- the policy -------------------------------------------------------------------------------------------


def test_it_requires_a_second_factor_of_superusers_approvers_and_custodians_by_default():
    # The test settings are the production settings (config/settings/test.py does not touch these).
    assert settings.TOLLGATE_MFA_REQUIRED_ROLES == ["superuser", "Prompt approvers", "Key custodians"]
    assert settings.MIDDLEWARE.index("identity.middleware.MfaGateMiddleware") > settings.MIDDLEWARE.index(
        "django_otp.middleware.OTPMiddleware"
    )


def test_the_settings_name_the_roles_and_an_unknown_name_fails_the_checks(settings):
    from identity.checks import mfa_roles_check

    assert mfa_roles_check(None) == []
    settings.TOLLGATE_MFA_REQUIRED_ROLES = ["superuser", "Prompt approver"]
    assert [error.id for error in mfa_roles_check(None)] == ["tollgate.E010"]


# --- enrolment ------------------------------------------------------------------------------------------------


def test_an_approver_without_a_device_reaches_only_enrolment(approver, in_review):
    client = password_client(approver)

    assert client.get("/admin/")["Location"] == ENROL
    assert client.get("/admin/prompts/promptversion/")["Location"] == ENROL
    assert client.get(VERIFY)["Location"] == ENROL
    approve = client.post(f"/admin/prompts/promptversion/{in_review.pk}/do/approve/", {"note": "fine"})
    assert approve.status_code == 302
    assert approve["Location"] == ENROL
    in_review.refresh_from_db()
    assert in_review.status == "in_review"
    # Outside the admin the session counts for nothing: the API's documentation asks for a sign-in.
    assert client.get("/api/docs/")["Location"].startswith("/admin/login/")


def test_enrolment_shows_a_qr_code_drawn_here_and_a_wrong_code_confirms_nothing(approver):
    client = password_client(approver)

    page = client.get(ENROL)
    assert b'src="data:image/svg+xml' in page.content
    wrong = client.post(ENROL, {"code": "000000" if code_for(client.session[PENDING_KEY]) != "000000" else "111111"})
    assert wrong.status_code == 200
    assert wrong.context["form"].errors
    assert not TOTPDevice.objects.filter(user=approver).exists()
    assert client.get("/admin/")["Location"] == ENROL


def test_enrolling_verifies_the_session_shows_recovery_codes_once_and_is_audited(approver):
    client = password_client(approver)

    key, codes = enrol(client)

    assert len(codes) == mfa.RECOVERY_CODE_COUNT
    assert client.get("/admin/").status_code == 200
    event = actions("auth.mfa_enrol")[-1]
    assert event.object_repr == approver.username
    assert event.changes == {"device": "totp", "recovery_codes": 10}
    assert key not in str(event.changes)
    assert codes[0] not in str(event.changes)
    # The overview says how many are left; it never shows them again.
    overview = client.get("/admin/mfa/")
    assert overview.status_code == 200
    assert codes[0] not in overview.content.decode()


def test_a_session_that_did_not_verify_cannot_enrol_another_device(approver):
    _, _ = enrol(password_client(approver))
    intruder = password_client(approver)  # the password alone

    assert intruder.get(ENROL)["Location"].startswith(VERIFY)
    with pytest.raises(MfaRefused):
        mfa.mfa_totp_enrol(actor=approver, key=mfa.totp_key_new(), token="123456")


# --- verification -----------------------------------------------------------------------------------------------


def test_an_enrolled_approver_signing_in_again_must_verify_before_anything_else(approver):
    key, _ = enrol(password_client(approver))
    client = password_client(approver)

    assert client.get("/admin/prompts/")["Location"] == f"{VERIFY}?next=%2Fadmin%2Fprompts%2F"
    with later(30, tick=True):  # the enrolment's code is used up; the next one is not
        response = client.post(VERIFY, {"code": code_for(key), "next": "/admin/prompts/"})
    assert response["Location"] == "/admin/prompts/"
    assert client.get("/admin/prompts/").status_code == 200


def test_a_code_is_accepted_once(approver):
    key, _ = enrol(password_client(approver))
    with later(30):
        code = code_for(key)
        first, second = password_client(approver), password_client(approver)
        assert first.post(VERIFY, {"code": code})["Location"] == "/admin/"
        assert second.post(VERIFY, {"code": code}).status_code == 200  # refused, shown again
    assert second.get("/admin/")["Location"].startswith(VERIFY)


def test_a_recovery_code_signs_in_once_and_is_audited(approver):
    _, codes = enrol(password_client(approver))
    client = password_client(approver)

    assert client.post(VERIFY, {"code": codes[0].upper()})["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200
    used = actions("auth.mfa_recovery_code_use")[-1]
    assert used.changes == {"recovery_codes_left": 9}
    assert codes[0] not in str(used.changes)

    again = password_client(approver)
    assert again.post(VERIFY, {"code": codes[0]}).status_code == 200
    assert again.get("/admin/")["Location"].startswith(VERIFY)


def test_failed_codes_are_throttled_and_audited_only_when_checked(approver):
    key, _ = enrol(password_client(approver))
    client = password_client(approver)
    wrong = "000000" if code_for(key) != "000000" else "111111"

    with later(60):
        assert client.post(VERIFY, {"code": wrong}).status_code == 200
        throttled = client.post(VERIFY, {"code": wrong})
        assert "Too many wrong codes" in throttled.content.decode()
        # Even the right code waits out the throttle.
        assert client.post(VERIFY, {"code": code_for(key)}).status_code == 200
    assert len(actions("auth.mfa_failed")) == 1
    with later(90):
        assert client.post(VERIFY, {"code": code_for(key)})["Location"] == "/admin/"


def test_the_gate_holds_whatever_backend_signed_the_person_in(approver, settings):
    # A sign-in by another backend (single sign-on, a proxy's header) is a session like any other.
    sso = "django.contrib.auth.backends.RemoteUserBackend"
    settings.AUTHENTICATION_BACKENDS = [*settings.AUTHENTICATION_BACKENDS, sso]
    _, _ = enrol(password_client(approver))
    client = Client()
    client.force_login(approver, backend=sso, verified=False)

    assert client.get("/admin/")["Location"].startswith(VERIFY)


def test_someone_whose_roles_do_not_require_it_may_enrol_and_must_then_verify(author):
    client = password_client(author)
    assert client.get("/admin/").status_code == 200

    enrol(client)

    assert password_client(author).get("/admin/")["Location"].startswith(VERIFY)


# --- the services refuse an unverified session ------------------------------------------------------------------


def _request_as(user: User, *, verified: bool) -> object:
    request = RequestFactory().post("/admin/prompts/promptversion/1/do/approve/")
    user.is_verified = lambda: verified  # type: ignore[attr-defined]  # as django-otp's middleware sets it
    request.user = user
    return request


def test_the_four_eyes_approval_refuses_an_unverified_session_of_an_approver(approver, in_review):
    unverified = RequestContext(request_id="r1", request=_request_as(approver, verified=False))
    with bound(unverified), pytest.raises(VerificationRequired):
        prompt_services.prompt_version_approve(actor=approver, version=in_review, note="fine")
    assert PromptVersion.objects.get(pk=in_review.pk).status == "in_review"

    with bound(RequestContext(request_id="r2", request=_request_as(approver, verified=True))):
        prompt_services.prompt_version_approve(actor=approver, version=in_review, note="fine")
    assert PromptVersion.objects.get(pk=in_review.pk).status == "approved"


def test_key_custodian_actions_refuse_an_unverified_session(world, custodian):
    from keys import services as key_services

    unverified = RequestContext(request_id="r3", request=_request_as(custodian, verified=False))
    with bound(unverified), pytest.raises(VerificationRequired):
        key_services.provider_key_revoke(actor=custodian, key=world["key"], reason="leaked")
    world["key"].refresh_from_db()
    assert world["key"].status != "revoked"


def test_changes_outside_a_request_are_not_refused(approver, in_review):
    # The shell on the host and Celery tasks have no session to verify.
    prompt_services.prompt_version_approve(actor=approver, version=in_review, note="fine")


# --- recovery codes, removal, reset ------------------------------------------------------------------------------


def test_new_recovery_codes_replace_the_old_ones_and_are_audited(approver):
    client = password_client(approver)
    _, old = enrol(client)

    response = client.post("/admin/mfa/", {"action": "regenerate"})

    new = list(response.context["codes"])
    assert set(new).isdisjoint(old)
    assert set(StaticToken.objects.filter(device__user=approver).values_list("token", flat=True)) == set(new)
    assert actions("auth.mfa_recovery_codes_regenerate")


def test_removing_ones_devices_is_audited_and_an_approver_must_enrol_again(approver):
    client = password_client(approver)
    enrol(client)

    client.post("/admin/mfa/", {"action": "remove"})

    assert not TOTPDevice.objects.filter(user=approver).exists()
    assert not StaticDevice.objects.filter(user=approver)
    assert actions("auth.mfa_remove")[-1].changes == {"devices": ["recovery_code", "totp"]}
    assert client.get("/admin/")["Location"] == ENROL


def test_an_administrator_resets_anothers_devices_with_a_reason(superuser, approver):
    enrol(password_client(approver))
    admin_client = Client()
    admin_client.force_login(superuser)
    page = f"/admin/auth/user/{approver.pk}/mfa-reset/"

    assert admin_client.get(f"/admin/auth/user/{approver.pk}/change/").content.count(b"mfa-reset-link") == 1
    assert admin_client.post(page, {"reason": ""}).status_code == 200  # the form asks for one
    assert TOTPDevice.objects.filter(user=approver).exists()
    assert admin_client.post(page, {"reason": "lost phone"})["Location"] == f"/admin/auth/user/{approver.pk}/change/"

    assert not TOTPDevice.objects.filter(user=approver).exists()
    event = actions("auth.mfa_reset")[-1]
    assert (event.actor_repr, event.object_repr, event.reason) == (superuser.username, approver.username, "lost phone")
    assert password_client(approver).get("/admin/")["Location"] == ENROL


def test_nobody_resets_their_own_devices_by_the_administrators_path(superuser):
    with pytest.raises(MfaRefused):
        mfa.mfa_devices_reset(actor=superuser, subject=superuser, reason="mine")


def test_only_an_administrator_resets_devices(approver, custodian):
    client = Client()
    client.force_login(custodian)

    assert client.get(f"/admin/auth/user/{approver.pk}/mfa-reset/").status_code == 403
    with pytest.raises(RoleRequired):
        mfa.mfa_devices_reset(actor=custodian, subject=approver, reason="lost phone")


def test_djangos_own_device_pages_are_not_in_the_admin(superuser):
    client = Client()
    client.force_login(superuser)

    assert client.get("/admin/otp_totp/totpdevice/").status_code == 404
    assert client.get("/admin/otp_static/staticdevice/").status_code == 404


def test_every_admin_page_links_to_ones_two_factor_page(author):
    client = Client()
    client.force_login(author)

    assert b'<a href="/admin/mfa/" id="mfa-link">' in client.get("/admin/").content


def test_a_code_no_device_could_show_is_a_throttled_failure_like_any_other(approver):
    TOTPDevice.objects.create(user=approver, name="phone", confirmed=True)
    recovery = StaticDevice.objects.create(user=approver, name="codes", confirmed=True)

    with later(0):
        assert mfa.mfa_verify(user=approver, token="abc\x00def").device is None
        assert mfa.mfa_verify(user=approver, token="!!!").throttled
    recovery.refresh_from_db()
    assert recovery.throttling_failure_count == 1
    assert len(actions("auth.mfa_failed")) == 1
