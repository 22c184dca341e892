"""Single sign-on against a real OpenID Connect provider (tests/oidc.py) over HTTP: accounts created and
found by (issuer, sub), roles following the groups claim, forged callbacks and tokens refused, password
sign-in switched off, inactive accounts deactivated."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import timedelta
from urllib.parse import urlencode

import pytest
import time_machine
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from audit.models import AuditEvent
from core.roles import Role
from identity.backends import OidcBackend
from identity.models import OidcIdentity
from tests.factories import PASSWORD, UserFactory
from tests.oidc import Provider, callback_path, provider_running, query_of

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def _provider_server() -> Iterator[Provider]:
    with provider_running() as provider:
        yield provider


@pytest.fixture
def provider(_provider_server: Provider) -> Iterator[Provider]:
    with _provider_server.settings():
        yield _provider_server


def _start(client: Client, next_url: str = "/admin/") -> str:
    response = client.get("/oidc/authenticate/?" + urlencode({"next": next_url}))
    assert response.status_code == 302
    return str(response["Location"])


def sso_sign_in(client: Client, provider: Provider, sub: str):
    callback = provider.authorize(_start(client), sub)
    return client.get(callback_path(callback))


def _roles(user: User) -> set[str]:
    return set(user.groups.values_list("name", flat=True))


def test_the_first_sign_in_creates_the_person_with_the_mapped_roles(client, provider):
    provider.person_set(
        "sub-alice", preferred_username="alice", email="alice@example.com", groups=["tollgate-authors", "everyone"]
    )

    response = sso_sign_in(client, provider, "sub-alice")

    assert response.status_code == 302
    assert response["Location"] == "/admin/"
    alice = User.objects.get(username="alice")
    assert _roles(alice) == {Role.PROMPT_AUTHORS.value}
    assert alice.is_staff
    assert not alice.is_superuser
    assert not alice.has_usable_password()
    assert alice.email == "alice@example.com"
    assert OidcIdentity.objects.get(user=alice).subject == "sub-alice"
    assert client.get("/admin/").status_code == 200
    actions = list(AuditEvent.objects.filter(object_id=str(alice.pk)).values_list("action", flat=True))
    assert {"sso.account_create", "sso.roles_change", "auth.sso_sign_in", "auth.login"} <= set(actions)
    change = AuditEvent.objects.get(action="sso.roles_change", object_id=str(alice.pk))
    assert change.changes["added"] == [Role.PROMPT_AUTHORS.value]
    assert change.changes["groups"] == ["tollgate-authors", "everyone"]


def test_a_later_sign_in_resyncs_the_roles_both_ways(client, provider):
    provider.person_set("sub-bob", preferred_username="bob", groups=["tollgate-authors"])
    sso_sign_in(client, provider, "sub-bob")
    client.logout()

    provider.person_set("sub-bob", preferred_username="bob", groups=["tollgate-approvers", "tollgate-auditors"])
    response = sso_sign_in(client, provider, "sub-bob")

    assert response.status_code == 302
    bob = User.objects.get(username="bob")
    assert _roles(bob) == {Role.PROMPT_APPROVERS.value, Role.AUDITORS.value}
    change = AuditEvent.objects.filter(action="sso.roles_change", object_id=str(bob.pk)).latest("id")
    assert change.changes["added"] == sorted([Role.AUDITORS.value, Role.PROMPT_APPROVERS.value])
    assert change.changes["removed"] == [Role.PROMPT_AUTHORS.value]


def test_claims_without_a_mapped_role_remove_the_roles_and_refuse_the_sign_in(client, provider):
    provider.person_set("sub-carol", preferred_username="carol", groups=["tollgate-authors"])
    sso_sign_in(client, provider, "sub-carol")
    client.logout()

    provider.person_set("sub-carol", preferred_username="carol", groups=["sales"])
    response = sso_sign_in(client, provider, "sub-carol")

    assert response.status_code == 403
    assert "no Tollgate role" in response.content.decode()
    carol = User.objects.get(username="carol")
    assert _roles(carol) == set()
    assert not carol.is_staff
    assert client.get("/admin/").status_code == 302
    assert AuditEvent.objects.filter(action="auth.sso_refused", object_id=str(carol.pk)).exists()


def test_nobody_is_created_for_claims_without_a_mapped_role(client, provider):
    provider.person_set("sub-dan", preferred_username="dan", groups="sales")

    response = sso_sign_in(client, provider, "sub-dan")

    assert response.status_code == 403
    assert not User.objects.filter(username="dan").exists()


def test_another_subject_with_the_same_email_does_not_take_over_the_account(client, provider):
    provider.person_set("sub-erin", preferred_username="erin", email="erin@example.com", groups=["tollgate-approvers"])
    sso_sign_in(client, provider, "sub-erin")
    client.logout()
    erin = User.objects.get(username="erin")

    # Someone at the provider changes their own e-mail address (and name) to Erin's.
    provider.person_set("sub-mallory", preferred_username="erin", email="erin@example.com", groups=["tollgate-authors"])
    refused = sso_sign_in(client, provider, "sub-mallory")
    provider.person_set(
        "sub-mallory", preferred_username="mallory", email="erin@example.com", groups=["tollgate-authors"]
    )
    separate = sso_sign_in(client, provider, "sub-mallory")

    assert refused.status_code == 403
    assert "belongs to another account" in refused.content.decode()
    assert separate.status_code == 302
    mallory = User.objects.get(username="mallory")
    assert mallory.pk != erin.pk
    assert _roles(User.objects.get(pk=erin.pk)) == {Role.PROMPT_APPROVERS.value}
    assert OidcIdentity.objects.get(user=erin).subject == "sub-erin"


def test_an_existing_password_account_is_never_taken_over_by_its_name(client, provider, auditor):
    provider.person_set("sub-x", preferred_username=auditor.username, groups=["tollgate-authors"])

    response = sso_sign_in(client, provider, "sub-x")

    assert response.status_code == 403
    assert not OidcIdentity.objects.filter(user=auditor).exists()
    assert _roles(auditor) == {Role.AUDITORS.value}


def test_an_administrator_links_an_existing_account_and_its_sign_ins_reach_it(client, provider, auditor):
    provider.person_set("sub-dave", preferred_username="whatever", groups=["tollgate-auditors"])
    call_command("sso_link", auditor.username, "sub-dave")

    response = sso_sign_in(client, provider, "sub-dave")

    assert response.status_code == 302
    assert OidcIdentity.objects.get(subject="sub-dave").user == auditor
    assert AuditEvent.objects.filter(action="sso.account_link", object_id=str(auditor.pk)).exists()


def test_a_callback_with_an_unknown_state_is_refused(client, provider):
    provider.person_set("sub-f", preferred_username="frank", groups=["tollgate-authors"])
    callback = provider.authorize(_start(client), "sub-f")
    forged = callback_path(callback).replace(f"state={query_of(callback)['state']}", "state=forged")

    response = client.get(forged)

    assert response.status_code == 400
    assert not User.objects.filter(username="frank").exists()


def test_a_callback_in_another_browser_is_refused(client, provider):
    provider.person_set("sub-g", preferred_username="gina", groups=["tollgate-authors"])
    callback = provider.authorize(_start(client), "sub-g")

    response = Client().get(callback_path(callback))

    assert response.status_code == 403
    assert not User.objects.filter(username="gina").exists()


def test_an_id_token_with_another_nonce_is_refused(client, provider):
    provider.person_set("sub-h", preferred_username="hank", groups=["tollgate-authors"])
    authorization_url = _start(client)
    nonce = query_of(authorization_url)["nonce"]
    callback = provider.authorize(authorization_url.replace(f"nonce={nonce}", "nonce=replayed"), "sub-h")

    response = client.get(callback_path(callback))

    assert response.status_code == 400
    assert not User.objects.filter(username="hank").exists()


def test_a_tampered_id_token_is_refused(client, provider, monkeypatch):
    provider.person_set("sub-ivy", preferred_username="ivy", groups=["tollgate-authors"])
    real_get_token = OidcBackend.get_token

    def tampered(self, payload):
        token = real_get_token(self, payload)
        header, claims, signature = token["id_token"].split(".")
        body = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))
        body["sub"] = "sub-victim"
        forged = base64.urlsafe_b64encode(json.dumps(body).encode()).rstrip(b"=").decode()
        return {**token, "id_token": f"{header}.{forged}.{signature}"}

    monkeypatch.setattr(OidcBackend, "get_token", tampered)
    response = sso_sign_in(client, provider, "sub-ivy")

    assert response.status_code == 400
    assert not User.objects.filter(username="ivy").exists()


def test_an_id_token_for_another_client_is_refused(client, provider):
    provider.person_set("sub-jo", preferred_username="jo", groups=["tollgate-authors"])
    authorization_url = _start(client)
    callback = provider.authorize(authorization_url.replace("client_id=tollgate-test", "client_id=other-app"), "sub-jo")

    response = client.get(callback_path(callback))

    # The provider bound the code to the other client: it refuses Tollgate's exchange of it.
    assert response.status_code == 403
    assert not User.objects.filter(username="jo").exists()


def test_a_deactivated_account_stays_out(client, provider):
    provider.person_set("sub-kim", preferred_username="kim", groups=["tollgate-authors"])
    sso_sign_in(client, provider, "sub-kim")
    client.logout()
    kim = User.objects.get(username="kim")
    kim.is_active = False
    kim.save()

    response = sso_sign_in(client, provider, "sub-kim")

    assert response.status_code == 403
    assert not User.objects.get(pk=kim.pk).is_active


def test_sso_pages_answer_404_when_not_configured(client):
    assert client.get("/oidc/authenticate/").status_code == 404
    assert client.get("/oidc/callback/?code=x&state=y").status_code == 404
    assert "Sign in with SSO" not in client.get("/admin/login/").content.decode()


def test_the_sign_in_page_offers_sso_when_configured(client, provider):
    page = client.get("/admin/login/?next=/admin/prompts/").content.decode()

    assert "Sign in with SSO" in page
    assert "/oidc/authenticate/?next=%2Fadmin%2Fprompts%2F" in page


# --- password sign-in -------------------------------------------------------------------------------------


def _password_sign_in(client: Client, username: str):
    return client.post("/admin/login/", {"username": username, "password": PASSWORD, "next": "/admin/"})


def test_password_sign_in_off_refuses_everyone_but_the_break_glass_accounts(client, provider, auditor, superuser):
    with provider.settings(TOLLGATE_PASSWORD_SIGNIN=False, TOLLGATE_BREAK_GLASS_USERS=[superuser.username]):
        refused = _password_sign_in(client, auditor.username)
        allowed = _password_sign_in(Client(), superuser.username)

    assert refused.status_code == 200
    assert "Please enter the correct" in refused.content.decode()
    assert allowed.status_code == 302
    assert allowed["Location"] == "/admin/"
    event = AuditEvent.objects.get(action="auth.password_refused")
    assert event.changes == {"username": auditor.username}
    assert not AuditEvent.objects.filter(action="auth.login_failed").exists()


def test_password_sign_in_is_on_by_default(client, auditor):
    assert _password_sign_in(client, auditor.username).status_code == 302


# --- inactivity -------------------------------------------------------------------------------------------


def test_accounts_without_a_sign_in_for_the_set_days_are_deactivated(client, provider, auditor):
    provider.person_set("sub-lee", preferred_username="lee", groups=["tollgate-authors"])
    provider.person_set("sub-max", preferred_username="max", groups=["tollgate-authors"])
    sso_sign_in(client, provider, "sub-lee")
    client.logout()
    with time_machine.travel(timezone.now() + timedelta(days=60)):
        sso_sign_in(client, provider, "sub-max")

    with (
        provider.settings(TOLLGATE_OIDC_DEACTIVATE_AFTER_DAYS=90),
        time_machine.travel(timezone.now() + timedelta(days=91)),
    ):
        call_command("sso_deactivate_inactive")

    assert not User.objects.get(username="lee").is_active
    assert User.objects.get(username="max").is_active
    assert User.objects.get(pk=auditor.pk).is_active  # not signed in through the provider: left alone
    event = AuditEvent.objects.get(action="auth.account_deactivate")
    assert event.object_repr == "lee"
    assert "90 days" in event.reason


def test_the_beat_task_runs_the_same_check(provider):
    from identity.tasks import sso_accounts_deactivate

    stale = UserFactory(username="nell")
    OidcIdentity.objects.create(
        user=stale, issuer=provider.issuer, subject="sub-nell", last_sign_in_at=timezone.now() - timedelta(days=400)
    )

    sso_accounts_deactivate.delay()

    assert not User.objects.get(pk=stale.pk).is_active


# --- four eyes ----------------------------------------------------------------------------------------------


def test_access_requests_for_roles_of_sso_accounts_are_refused_while_sso_is_on(client, provider, superuser):
    from django.contrib.auth.models import Group

    from core.errors import AccessRequestRefused
    from identity.services import access_request_create

    provider.person_set("sub-olga", preferred_username="olga", groups=["tollgate-authors"])
    sso_sign_in(client, provider, "sub-olga")
    olga = User.objects.get(username="olga")

    with pytest.raises(AccessRequestRefused, match="identity provider"):
        access_request_create(
            actor=superuser,
            subject=olga,
            kind="role",
            group=Group.objects.get(name=Role.PROMPT_APPROVERS.value),
            reason="reviews prompts",
        )
    # Superuser status is not mapped: it stays with access requests.
    assert access_request_create(actor=superuser, subject=olga, kind="superuser", reason="on call").pk


def test_refused_sso_sign_ins_do_not_lock_out_the_address(client, provider, auditor):
    provider.person_set("sub-nobody", preferred_username="nobody", groups=["sales"])
    for _ in range(8):  # more than TOLLGATE_LOGIN_FAILURE_LIMIT
        assert sso_sign_in(Client(), provider, "sub-nobody").status_code == 403

    assert _password_sign_in(client, auditor.username).status_code == 302


def test_an_unreachable_provider_is_said_so_not_an_error_page(client, provider):
    with provider.settings(TOLLGATE_OIDC_ISSUER="http://127.0.0.1:9"):
        response = client.get("/oidc/authenticate/")

    assert response.status_code == 502
    assert "cannot be reached" in response.content.decode()


def test_the_issuer_may_be_written_with_a_trailing_slash(client, provider):
    provider.person_set("sub-pat", preferred_username="pat", groups=["tollgate-authors"])

    with provider.settings(TOLLGATE_OIDC_ISSUER=f"{provider.issuer}/"):
        response = sso_sign_in(client, provider, "sub-pat")

    assert response.status_code == 302
    assert OidcIdentity.objects.get(subject="sub-pat").issuer == provider.issuer
