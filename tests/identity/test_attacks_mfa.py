"""Attacks on two-factor authentication, each found by a hostile review: a guarantee of docs/admin.md
(Two-factor authentication) that held only for the paths first thought of."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django_otp.plugins.otp_totp.models import TOTPDevice

from core.context import RequestContext, bound
from core.errors import VerificationRequired
from prompts import services as prompt_services
from prompts.models import PromptVersion
from tests.factories import UserFactory
from tests.identity.test_mfa import ENROL, _request_as, code_for, enrol, password_client

pytestmark = pytest.mark.django_db


def _grant_permission(subject, codename: str) -> None:
    """Grant one permission the documented way: an access request filed by one administrator and approved by
    another (identity.services)."""
    from identity import services as identity_services
    from identity.models import AccessKind

    filer = UserFactory(username=f"filer-{codename}", is_superuser=True)
    approver_admin = UserFactory(username=f"granter-{codename}", is_superuser=True)
    app_label = "keys" if codename.endswith("apiclient") else "auth" if codename.endswith("_user") else "prompts"
    permission = Permission.objects.get(codename=codename, content_type__app_label=app_label)
    request = identity_services.access_request_create(
        actor=filer, subject=subject, kind=AccessKind.PERMISSION, permission=permission, reason="covers reviews"
    )
    identity_services.access_request_approve(actor=approver_admin, access_request=request, note="ok")


def test_a_directly_held_approval_permission_approves_without_a_second_factor(in_review):
    """The second factor is required by role name only (core.mfa.mfa_required); the same capability held as a
    permission (an access request of kind "permission", the user admin's user_permissions) escapes it."""
    eve = UserFactory(username="eve-direct", is_staff=True)
    _grant_permission(eve, "review_promptversion")
    eve = type(eve).objects.get(pk=eve.pk)  # fresh permission cache
    assert not TOTPDevice.objects.filter(user=eve).exists()

    unverified = RequestContext(request_id="h1", request=_request_as(eve, verified=False))
    with bound(unverified), pytest.raises(VerificationRequired):
        prompt_services.prompt_version_approve(actor=eve, version=in_review, note="no second factor")
    assert PromptVersion.objects.get(pk=in_review.pk).status == "in_review"


def test_a_directly_held_approval_permission_reaches_the_admin_unverified(in_review):
    """The same through the admin: a password-only session approves a version."""
    eve = UserFactory(username="eve-direct2", is_staff=True)
    for codename in ("review_promptversion", "view_promptversion", "change_promptversion"):
        _grant_permission(eve, codename)
    client = password_client(eve)
    client.post(f"/admin/prompts/promptversion/{in_review.pk}/do/approve/", {"reason": "fine"})
    assert PromptVersion.objects.get(pk=in_review.pk).status == "in_review"


def test_a_reset_leaves_the_old_sessions_alive_and_they_enrol_a_new_device(superuser, approver):
    """docs/admin.md: after a reset "the person enrols again at their next sign-in". The sessions of the
    person (a stolen laptop's, the reason for the reset) are not ended: they enrol a device of their own
    choosing without any sign-in and are verified."""
    old_session = password_client(approver)
    enrol(old_session)  # verified
    admin_client = Client()
    admin_client.force_login(superuser)
    admin_client.post(f"/admin/auth/user/{approver.pk}/mfa-reset/", {"reason": "laptop and phone stolen"})
    assert not TOTPDevice.objects.filter(user=approver).exists()

    response = old_session.get("/admin/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/"), response["Location"]


def test_removing_ones_devices_lets_a_password_only_session_elsewhere_enrol(approver):
    """A session that knows only the password waits at verification; when the person removes their devices
    (to move to a new phone) that other session is not ended and enrols its own authenticator first."""
    owner = password_client(approver)
    enrol(owner)
    attacker = password_client(approver)  # password only
    assert attacker.get("/admin/")["Location"].startswith("/admin/mfa/verify/")

    owner.post("/admin/mfa/", {"action": "remove"})
    assert not TOTPDevice.objects.filter(user=approver, confirmed=True).exists()

    # The other session ended with the removal: it is signed out, not sent to enrolment.
    refused = attacker.get(ENROL)
    assert refused.status_code == 302
    assert refused["Location"].startswith("/admin/login/")
    assert owner.get(ENROL).status_code == 200  # the session that removed them enrols the new phone


def test_a_directly_held_client_permission_reveals_a_signing_secret_without_a_second_factor(world):
    """The key custodians' powers held as one permission: an unverified (password-only) session must not
    generate a new request signing secret of a production API client (core.mfa.mfa_required once looked at
    role names only)."""
    from keys import services as key_services

    mallory = UserFactory(username="mallory-direct", is_staff=True)
    _grant_permission(mallory, "change_apiclient")
    mallory = type(mallory).objects.get(pk=mallory.pk)
    unverified = RequestContext(request_id="h2", request=_request_as(mallory, verified=False))
    with bound(unverified), pytest.raises(VerificationRequired):
        key_services.api_client_rotate_signing_secret(actor=mallory, client=world["client"], reason="x")


def test_a_directly_held_change_user_permission_ends_a_superusers_sessions_from_a_password_only_session(
    superuser,
):
    """auth.change_user held directly (no role holds it): a session that knows only the password must not
    deactivate a superuser — ending all their sessions —, which only a superuser may (docs/admin.md,
    Sessions), and never without the second factor."""
    from qsessions.models import Session

    victim_browser = Client()
    victim_browser.force_login(superuser)
    assert Session.objects.filter(user=superuser).exists()

    mallory = UserFactory(username="mallory-users", is_staff=True)
    _grant_permission(mallory, "view_user")
    _grant_permission(mallory, "change_user")
    client = password_client(mallory)
    assert not TOTPDevice.objects.filter(user=mallory).exists()
    page = f"/admin/auth/user/{superuser.pk}/change/"
    # Holding a permission no exempt role holds requires the second factor: the page is enrolment's.
    for response in (client.get(page), client.post(page, {"username": superuser.username, "is_active": ""})):
        assert response.status_code == 302
        assert response["Location"].startswith("/admin/mfa/enrol/")
    superuser.refresh_from_db()
    assert superuser.is_active, "a password-only session deactivated a superuser"
    assert Session.objects.filter(user=superuser).exists()


def test_a_password_holder_locks_the_owner_out_of_verification_by_throttling(approver):
    """The throttle is per device, not per session: whoever knows only the password spends one wrong code each
    time the wait ends. Uncapped, each doubled the owner's wait (12 codes: 34 minutes; 20: six days); the wait
    now stops doubling at 2**(THROTTLE_FAILURES_CAP - 1) seconds, and the owner's right code is accepted then."""
    import time

    import time_machine

    from identity.mfa import THROTTLE_FAILURES_CAP
    from tests.identity.test_mfa import VERIFY

    owner = password_client(approver)
    key, _ = enrol(owner)
    attacker = password_client(approver)
    start, elapsed = time.time(), 0.0
    for failures in range(12):
        with time_machine.travel(start + elapsed, tick=False):
            wrong = f"{(int(code_for(key)) + 500000) % 1000000:06d}"
            attacker.post(VERIFY, {"code": wrong})
        last, elapsed = start + elapsed, elapsed + 2**failures + 1
    with time_machine.travel(last + 2 ** (THROTTLE_FAILURES_CAP - 1) + 1, tick=False):  # the capped wait
        owner = password_client(approver)  # the owner signs in, on another browser
        response = owner.post(VERIFY, {"code": code_for(key)})
    assert response.status_code == 302, "the owner's right code was refused: throttled by someone else"
    assert response["Location"] == "/admin/"
