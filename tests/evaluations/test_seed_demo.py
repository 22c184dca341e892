from __future__ import annotations

import re
from datetime import timedelta

import pytest
import time_machine
from django.contrib.auth import authenticate
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.utils import timezone
from rest_framework.test import APIClient as HttpClient

from audit.models import AuditEvent
from core.environments import Environment
from core.roles import Role
from evaluations.demo import DEMO_PASSWORD
from keys.models import ApiClient, ProviderKey
from prompts import services
from prompts.choices import VersionStatus
from prompts.models import Prompt

pytestmark = pytest.mark.django_db


def test_seed_demo_creates_a_login_for_every_role(settings, capsys):
    settings.DEBUG = True

    call_command("seed_demo")

    output = capsys.readouterr().out
    for role in Role:
        user = User.objects.get(groups__name=role.value)
        assert authenticate(username=user.username, password=DEMO_PASSWORD) == user
        assert user.username in output
    assert User.objects.get(username="admin").is_superuser
    created = AuditEvent.objects.filter(action="user.create")
    assert created.count() == 5
    assert set(created.values_list("actor_repr", flat=True)) == {"seed_demo"}
    assert AuditEvent.objects.filter(action="user.groups_change", actor_repr="seed_demo").count() == 4


def test_seed_demo_releases_each_prompt_everywhere_approved_by_someone_else(settings):
    settings.DEBUG = True

    call_command("seed_demo")

    assert Prompt.objects.count() == 3
    for prompt in Prompt.objects.all():
        version = prompt.versions.get()
        assert version.status == VersionStatus.APPROVED
        assert version.author != version.reviewed_by
        assert sorted(prompt.releases.values_list("environment", flat=True)) == sorted(Environment.values)
        assert services.released_version_for_run(slug=prompt.slug, environment="production") == version


def test_seed_demo_prints_a_working_token_per_environment_every_run(settings, capsys):
    settings.DEBUG = True
    call_command("seed_demo")
    first = re.findall(r"tg_(?:dev|stg|prd)_[0-9A-Za-z]{38}", capsys.readouterr().out)

    call_command("seed_demo")
    second = re.findall(r"tg_(?:dev|stg|prd)_[0-9A-Za-z]{38}", capsys.readouterr().out)

    assert [token[:7] for token in second] == ["tg_dev_", "tg_stg_", "tg_prd_"]
    for token in second:
        response = HttpClient().get("/api/v1/prompts", HTTP_AUTHORIZATION=f"Bearer {token}")
        assert [prompt["slug"] for prompt in response.json()] == ["email-draft", "support-summary", "ticket-classifier"]
    assert HttpClient().get("/api/v1/prompts", HTTP_AUTHORIZATION=f"Bearer {first[0]}").status_code == 401
    for environment in Environment.values:
        key = ProviderKey.objects.get(environment=environment, status="active")
        assert key.base_url == settings.TOLLGATE_SANDBOX_URL


def test_seed_demo_is_idempotent(settings):
    settings.DEBUG = True
    call_command("seed_demo")
    User.objects.filter(username="author").update(email="changed@example.com")

    call_command("seed_demo")

    assert User.objects.count() == 5
    assert Prompt.objects.count() == 3
    assert ProviderKey.objects.count() == 3
    assert ApiClient.objects.count() == 3
    assert User.objects.get(username="author").email == "changed@example.com"


def test_seed_demo_refuses_outside_debug(settings):
    settings.DEBUG = False

    with pytest.raises(CommandError, match="DJANGO_DEBUG"):
        call_command("seed_demo")
    assert not User.objects.exists()


def test_the_demo_accounts_that_must_use_a_second_factor_sign_in_with_the_demo_code(settings, capsys, client):
    """A tour of `make run` signs in as the approver: password, then the demo authenticator's code, which
    `manage.py demo_code` prints (the real verification page; the account was enrolled by seed_demo)."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    settings.DEBUG = True
    call_command("seed_demo")
    assert "demo_code" in capsys.readouterr().out
    enrolled = set(TOTPDevice.objects.filter(confirmed=True).values_list("user__username", flat=True))
    assert enrolled == {"admin", "approver", "custodian"}
    assert AuditEvent.objects.filter(action="auth.mfa_enrol").count() == 3

    signed_in = client.post("/admin/login/?next=/admin/", {"username": "approver", "password": DEMO_PASSWORD})
    assert signed_in.status_code == 302
    assert client.get("/admin/prompts/promptversion/").url.startswith("/admin/mfa/verify/")
    with time_machine.travel(timezone.now() + timedelta(seconds=30)):  # the code enrolment used is spent
        call_command("demo_code")
        code = capsys.readouterr().out.strip()
        verified = client.post("/admin/mfa/verify/", {"code": code})
        assert verified.status_code == 302, verified.content
        assert client.get("/admin/prompts/promptversion/").status_code == 200


def test_demo_code_refuses_without_debug(settings):
    settings.DEBUG = False
    with pytest.raises(CommandError):
        call_command("demo_code")
