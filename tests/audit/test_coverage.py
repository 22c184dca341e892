"""Every governed change writes an audit event: this walks the admin and fails when a model that can be
added, changed or deleted there has no scenario here, or when its scenario leaves no event behind."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group, User
from django.forms import MultiWidget
from django.test import Client, RequestFactory

from audit.models import AuditEvent
from evaluations.models import EvaluationCase
from gateway.models import DiscoveredPrompt
from keys import services as key_services
from prompts import services as prompt_services
from tests.factories import version_content
from usage.models import BudgetAlert, MonitorAlert, Price

pytestmark = pytest.mark.django_db


def form_data(client: Client, url: str, **changes: Any) -> dict[str, Any]:
    """The admin change form as it is filled in now (what a person would resubmit), with `changes`."""
    form = client.get(url).context["adminform"].form
    data: dict[str, Any] = {}
    for name, field in form.fields.items():
        value = form[name].value()
        if field.disabled or value is None:
            continue
        if isinstance(field.widget, MultiWidget):  # date and time as two inputs
            for index, part in enumerate(field.widget.decompress(value) or []):
                data[f"{name}_{index}"] = str(part or "")
        elif isinstance(value, bool):
            if value:
                data[name] = "on"
        elif isinstance(value, list | tuple):
            data[name] = [str(item) for item in value]
        elif isinstance(value, dict):
            data[name] = json.dumps(value)
        else:
            data[name] = str(value)
    return {**data, **changes}


def _user_add(client: Client, world: dict[str, Any]) -> None:
    password = "x7#Lq!v9Pz2m"
    client.post(
        "/admin/auth/user/add/",
        {"username": "newcomer", "password1": password, "password2": password, "usable_password": "true"},
    )


def _user_change(client: Client, world: dict[str, Any]) -> None:
    user = world["outsider"]
    url = f"/admin/auth/user/{user.pk}/change/"
    # Removing a role is immediate; granting one is an access request (_access_request_add).
    client.post(url, form_data(client, url, email="moved@example.com", groups=[]))


def _user_delete(client: Client, world: dict[str, Any]) -> None:
    victim = User.objects.create_user("temporary", password="x7#Lq!v9Pz2m")
    client.post(f"/admin/auth/user/{victim.pk}/delete/", {"post": "yes"})


def _access_request_add(client: Client, world: dict[str, Any]) -> None:
    client.post("/admin/identity/accessrequest/add/", {
        "subject": world["outsider"].pk, "kind": "role", "group": Group.objects.get(name="Auditors").pk,
        "reason": "joins the audit team"})  # fmt: skip


def _group_add(client: Client, world: dict[str, Any]) -> None:
    client.post("/admin/auth/group/add/", {"name": "Contractors"})


def _group_change(client: Client, world: dict[str, Any]) -> None:
    group = Group.objects.create(name="Reviewers")
    url = f"/admin/auth/group/{group.pk}/change/"
    client.post(url, form_data(client, url, name="Senior reviewers"))


def _group_delete(client: Client, world: dict[str, Any]) -> None:
    group = Group.objects.create(name="Leaving")
    client.post(f"/admin/auth/group/{group.pk}/delete/", {"post": "yes"})


def _key_add(client: Client, world: dict[str, Any]) -> None:
    client.post("/admin/keys/providerkey/add/", {
        "environment": "development", "label": "dev", "secret": "sk-ant-api03-coverage-0123456789abcdef",
        "owner": world["custodian"].pk, "base_url": "https://api.anthropic.com", "monthly_cap_usd": "10",
        "rotation_period_days": "90", "alert_threshold_percent": "80",
    })  # fmt: skip


def _key_change(client: Client, world: dict[str, Any]) -> None:
    url = f"/admin/keys/providerkey/{world['key'].pk}/change/"
    client.post(url, form_data(client, url, monthly_cap_usd="75", reason="more room for the launch"))


def _client_add(client: Client, world: dict[str, Any]) -> None:
    client.post("/admin/keys/apiclient/add/", {"name": "svc", "environment": "production",
                                               "owner": world["custodian"].pk, "all_prompts": "on",
                                               "rate_limit_per_minute": "60"})  # fmt: skip


def _client_change(client: Client, world: dict[str, Any]) -> None:
    url = f"/admin/keys/apiclient/{world['client'].pk}/change/"
    client.post(url, form_data(client, url, rate_limit_per_minute="30", reason="noisy"))


def _price_add(client: Client, world: dict[str, Any]) -> None:
    price = Price.objects.filter(model="claude-haiku-4-5")[0]
    url = f"/admin/usage/price/{price.pk}/change/"
    data = form_data(client, url, reason="new price from 2031", effective_from_0="2031-01-01",
                     effective_from_1="00:00:00")  # fmt: skip
    client.post("/admin/usage/price/add/", data)


def _price_change(client: Client, world: dict[str, Any]) -> None:
    price = Price.objects.filter(model="claude-haiku-4-5")[0]
    url = f"/admin/usage/price/{price.pk}/change/"
    client.post(url, form_data(client, url, note="typo fixed", reason="typo"))


def _alert_change(client: Client, world: dict[str, Any]) -> None:
    alert = BudgetAlert.objects.create(
        scope="provider_key", scope_id=world["key"].pk, label="k", period="month", period_start="2026-11-01",
        threshold_percent=80, spent_usd=Decimal(8), limit_usd=Decimal(10),
    )  # fmt: skip
    client.post(f"/admin/usage/budgetalert/{alert.pk}/change/", {"triage_note": "expected"})


def _monitor_alert_change(client: Client, world: dict[str, Any]) -> None:
    alert = MonitorAlert.objects.create(kind="error_rate", subject="production/overloaded", value=0.2, threshold=0.05,
                                        window_start="2026-11-02T09:00:00Z", message="m")  # fmt: skip
    client.post(f"/admin/usage/monitoralert/{alert.pk}/change/", {"triage_note": "incident"})


def _prompt_add(client: Client, world: dict[str, Any]) -> None:
    client.post("/admin/prompts/prompt/add/", {"slug": "new-one", "name": "New", "purpose": "p",
                                               "owner": world["author"].pk, "data_categories": ["none"]})  # fmt: skip


def _prompt_change(client: Client, world: dict[str, Any]) -> None:
    url = f"/admin/prompts/prompt/{world['prompt'].pk}/change/"
    client.post(url, form_data(client, url, name="Renamed", reason="clearer"))


def _version_add(client: Client, world: dict[str, Any]) -> None:
    content = version_content()
    client.post("/admin/prompts/promptversion/add/", {
        **{k: (json.dumps(v) if isinstance(v, list | dict) else v) for k, v in content.items()},
        "prompt": world["prompt"].pk, "change_summary": "coverage",
    })  # fmt: skip


def _version_change(client: Client, world: dict[str, Any]) -> None:
    url = f"/admin/prompts/promptversion/{world['draft'].pk}/change/"
    client.post(url, form_data(client, url, change_summary="Reworded"))


def _case_add(client: Client, world: dict[str, Any]) -> None:
    client.post("/admin/evaluations/evaluationcase/add/", {
        "prompt": world["prompt"].pk, "name": "printer", "variables": '{"ticket": "printer"}',
        "expectations": '[{"contains": "printer"}]', "active": "on", "reason": "cover printers"})  # fmt: skip


def _case_change(client: Client, world: dict[str, Any]) -> None:
    case = EvaluationCase.objects.create(prompt=world["prompt"], name="c", expectations=[{"contains": "x"}],
                                         created_by=world["author"])  # fmt: skip
    url = f"/admin/evaluations/evaluationcase/{case.pk}/change/"
    client.post(url, form_data(client, url, name="renamed", reason="clearer"))


def _discovered_prompt_register(client: Client, world: dict[str, Any]) -> None:
    discovered = DiscoveredPrompt.objects.create(
        environment="production", system_hash="0" * 64, characters=12, text_redacted="You are kind",
        last_model="claude-haiku-4-5",
    )  # fmt: skip
    client.post(f"/admin/gateway/discoveredprompt/{discovered.pk}/register/", {"slug": "kind", "name": "Kind"})


# (model, operation) → (who does it, the scenario, the object_type its event must carry)
Scenario = tuple[str, Callable[[Client, dict[str, Any]], None], str]
SCENARIOS: dict[tuple[str, str], Scenario] = {
    ("auth.user", "add"): ("superuser", _user_add, "auth.user"),
    ("auth.user", "change"): ("superuser", _user_change, "auth.user"),
    ("auth.user", "delete"): ("superuser", _user_delete, "auth.user"),
    ("auth.group", "add"): ("superuser", _group_add, "auth.group"),
    ("identity.accessrequest", "add"): ("superuser", _access_request_add, "identity.accessrequest"),
    ("auth.group", "change"): ("superuser", _group_change, "auth.group"),
    ("auth.group", "delete"): ("superuser", _group_delete, "auth.group"),
    ("keys.providerkey", "add"): ("custodian", _key_add, "keys.providerkey"),
    ("keys.providerkey", "change"): ("custodian", _key_change, "keys.providerkey"),
    ("keys.apiclient", "add"): ("custodian", _client_add, "keys.apiclient"),
    ("keys.apiclient", "change"): ("custodian", _client_change, "keys.apiclient"),
    ("usage.price", "add"): ("custodian", _price_add, "usage.price"),
    ("usage.price", "change"): ("custodian", _price_change, "usage.price"),
    ("usage.budgetalert", "change"): ("approver", _alert_change, "usage.budgetalert"),
    ("usage.monitoralert", "change"): ("approver", _monitor_alert_change, "usage.monitoralert"),
    ("prompts.prompt", "add"): ("author", _prompt_add, "prompts.prompt"),
    ("prompts.prompt", "change"): ("author", _prompt_change, "prompts.prompt"),
    ("prompts.promptversion", "add"): ("author", _version_add, "prompts.promptversion"),
    ("prompts.promptversion", "change"): ("author", _version_change, "prompts.promptversion"),
    ("evaluations.evaluationcase", "add"): ("author", _case_add, "evaluations.evaluationcase"),
    ("evaluations.evaluationcase", "change"): ("author", _case_change, "evaluations.evaluationcase"),
    # Not an add, change or delete of the admin: an action of its own.
    ("gateway.discoveredprompt", "register"): ("author", _discovered_prompt_register, "gateway.discoveredprompt"),
}


def editable_in_the_admin() -> set[tuple[str, str]]:
    request = RequestFactory().get("/")
    request.user = User(is_superuser=True, is_staff=True, is_active=True)
    found = set()
    for model, model_admin in admin.site._registry.items():
        for operation in ("add", "change", "delete"):
            allowed = getattr(model_admin, f"has_{operation}_permission")(request)
            if allowed:
                found.add((model._meta.label_lower, operation))
    return found


def test_every_way_to_change_something_in_the_admin_has_a_scenario():
    missing = editable_in_the_admin() - set(SCENARIOS)

    assert not missing, f"governed changes without an audit scenario: {sorted(missing)}"


@pytest.fixture
def world(request, author, approver, custodian, outsider, superuser):
    prompt = prompt_services.prompt_create(actor=author, slug="summary", name="Summary", purpose="x", owner=author)
    draft = prompt_services.prompt_version_create(actor=author, prompt=prompt, content=version_content(),
                                                  change_summary="v1")  # fmt: skip
    key = key_services.provider_key_create(actor=custodian, environment="production", label="prod",
                                           secret="sk-ant-api03-coverage-prod-0123456789", owner=custodian,
                                           monthly_cap_usd=Decimal(50))  # fmt: skip
    api_client, _ = key_services.api_client_create(actor=custodian, name="app", environment="production",
                                                   owner=custodian, all_prompts=True)  # fmt: skip
    return {"author": author, "approver": approver, "custodian": custodian, "outsider": outsider,
            "superuser": superuser, "prompt": prompt, "draft": draft, "key": key, "client": api_client}  # fmt: skip


@pytest.mark.parametrize("change", sorted(SCENARIOS), ids=lambda change: "-".join(change))
def test_each_governed_change_in_the_admin_writes_an_audit_event(client, world, change):
    who, scenario, object_type = SCENARIOS[change]
    client.force_login(world[who])
    last = AuditEvent.objects.order_by("-sequence").values_list("sequence", flat=True).first()

    scenario(client, world)

    new = AuditEvent.objects.filter(sequence__gt=last, object_type=object_type, actor_repr=world[who].username)
    assert new.exclude(action__startswith="auth.").exists(), f"{change}: no audit event for {object_type}"
