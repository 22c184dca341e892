"""Who can do what: every principal against every admin page and every API endpoint, compared with the
table in core/permission_matrix.py (the one docs/permissions.md is generated from). A page or an endpoint
the URL resolver knows but the table does not fails the walk, as does any answer the table does not
expect."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group, User
from django.core.management import call_command
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from rest_framework.test import APIClient

from audit.models import AuditEvent
from core import permission_matrix as matrix
from core.roles import Role
from evaluations import services as evaluation_services
from evaluations.models import EvaluationCase
from gateway.models import Batch, DiscoveredPrompt, Job, Run
from identity import services as identity_services
from keys import services as key_services
from keys.models import ApiToken
from prompts import services as prompt_services
from prompts.models import PromptVersion, Release
from tests.factories import UserFactory, version_content
from usage import services as usage_services
from usage.models import BudgetAlert, MonitorAlert, Price, UsageRecord

pytestmark = pytest.mark.django_db

TICKET = {"ticket": "The printer on floor 3 is jammed again.", "customer_email": "jo@example.com"}
BOUND_MESSAGE = {"model": "prompt:support-summary", "max_tokens": 100,
                 "messages": [{"role": "user", "content": "The printer is jammed."}]}  # fmt: skip
FREEFORM_MESSAGE = {"model": "claude-haiku-4-5", "max_tokens": 100,
                    "messages": [{"role": "user", "content": "The printer is jammed."}]}  # fmt: skip
# The body each kind of request sends (core/permission_matrix.py names the kinds).
BODIES: dict[str, Any] = {
    "": None,
    "run": {"variables": TICKET},
    "job": {"variables": TICKET},
    "batch": {"items": [{"custom_id": "one", "variables": TICKET}]},
    "estimate": {"model": "claude-haiku-4-5", "input_tokens": 1000, "output_tokens": 100},
    "prompt-bound": BOUND_MESSAGE,
    "free-form": FREEFORM_MESSAGE,
    "prompt-bound count": {key: value for key, value in BOUND_MESSAGE.items() if key != "max_tokens"},
    "free-form count": {key: value for key, value in FREEFORM_MESSAGE.items() if key != "max_tokens"},
    "prompt-bound batch": {"requests": [{"custom_id": "one", "params": BOUND_MESSAGE}]},
    "free-form batch": {"requests": [{"custom_id": "one", "params": FREEFORM_MESSAGE}]},
}


def _routes(patterns: list[Any], prefix: str = "", namespace: str = "") -> list[tuple[str, str]]:
    found = []
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            inner = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
            found += _routes(pattern.url_patterns, prefix + str(pattern.pattern), inner)
        elif isinstance(pattern, URLPattern):
            found.append((prefix + str(pattern.pattern), f"{namespace}{pattern.name or ''}"))
    return found


def route_names() -> set[str]:
    """Every named page of the admin and the API the URL resolver serves, but those the table leaves out."""
    names = {name for route, name in _routes(get_resolver().url_patterns) if not name.endswith(":")}
    return {name for name in names if name and name not in matrix.NOT_WALKED}


# --- the world the walk runs in --------------------------------------------------------------------------


@pytest.fixture
def principals(world, author, approver, custodian, auditor, outsider, superuser) -> dict[str, User | None]:
    # Sessions are verified with a second factor where the roles require one (tests/conftest.py), but the
    # approver who has not enrolled yet.
    unenrolled = UserFactory(username="frank-approver", roles=[Role.PROMPT_APPROVERS])
    return {"anonymous": None, "staff, no role": outsider, "Prompt authors": author,
            "Prompt approvers": approver, "Key custodians": custodian, "Auditors": auditor,
            "superuser": superuser, matrix.UNENROLLED: unenrolled}  # fmt: skip


def _client(custodian: User, **fields: Any) -> tuple[Any, str]:
    client, _ = key_services.api_client_create(actor=custodian, environment="production", owner=custodian,
                                               rate_limit_per_minute=1000, **fields)  # fmt: skip
    _, token = key_services.api_token_issue(actor=custodian, client=client, label="matrix")
    return client, token


@pytest.fixture
def api_principals(world, custodian) -> dict[str, str | None]:
    _, bound = _client(custodian, name="bound", allowed_prompts=["support-summary"])
    _, freeform = _client(custodian, name="agent", freeform=True, freeform_models=["claude-haiku-4-5"],
                          freeform_max_tokens=1000)  # fmt: skip
    _, other = _client(custodian, name="other", allowed_prompts=["another-prompt"])
    inactive_client, inactive = _client(custodian, name="gone", all_prompts=True)
    key_services.api_client_set_active(actor=custodian, client=inactive_client, active=False, reason="left")
    signing_client, unsigned = _client(custodian, name="signing", all_prompts=True)
    key_services.api_client_rotate_signing_secret(actor=custodian, client=signing_client, reason="sign")
    key_services.api_client_update(actor=custodian, client=signing_client, reason="sign", signature_required=True)
    return {"anonymous": None, "prompt-bound": bound, "free-form": freeform, "other prompts only": other,
            "inactive": inactive, "signature required, unsigned": unsigned}  # fmt: skip


def _history_id(instance: Any) -> int:
    return int(instance.history.order_by("history_id").first().history_id)


@pytest.fixture
def objects(world, author, approver, custodian, outsider, superuser, api_principals) -> dict[str, Any]:
    """One object of each model the admin shows, and what the API's paths name, by placeholder."""
    http = APIClient()
    http.credentials(HTTP_AUTHORIZATION=f"Bearer {api_principals['prompt-bound']}")
    run_id = http.post("/api/v1/prompts/support-summary/run", BODIES["run"], format="json").json()["id"]
    job_id = http.post("/api/v1/prompts/support-summary/jobs", BODIES["job"], format="json").json()["id"]
    batch_id = http.post("/api/v1/prompts/support-summary/batches", BODIES["batch"], format="json").json()["id"]
    message_batch = http.post("/anthropic/v1/messages/batches", BODIES["prompt-bound batch"], format="json")
    assert message_batch.status_code == 200, message_batch.content
    version: PromptVersion = world["version"]
    draft = prompt_services.prompt_version_create(actor=author, prompt=world["prompt"], content=version_content(),
                                                  change_summary="v2")  # fmt: skip
    case = evaluation_services.evaluation_case_save(
        actor=author, reason="cover printers",
        case=EvaluationCase(prompt=world["prompt"], name="printer", variables=TICKET,
                            expectations=[{"contains": "printer"}]),
    )  # fmt: skip
    submitted = prompt_services.prompt_version_create(actor=author, prompt=world["prompt"],
                                                      content=version_content(), change_summary="v3")  # fmt: skip
    prompt_services.prompt_version_submit(actor=author, version=submitted)
    evaluation = evaluation_services.evaluation_start(actor=author, version=submitted)
    access_request = identity_services.access_request_create(
        actor=superuser, subject=outsider, kind="role", group=Group.objects.get(name="Auditors"), reason="audits"
    )
    key = world["key"]
    client = world["client"]
    price = Price.objects.filter(model="claude-haiku-4-5")[0]
    price.note = "checked"
    usage_services.price_save(actor=custodian, price=price, reason="checked")
    alert = BudgetAlert.objects.create(
        scope="provider_key", scope_id=key.pk, label="k", period="month", period_start="2026-11-01",
        threshold_percent=80, spent_usd=Decimal(8), limit_usd=Decimal(10),
    )  # fmt: skip
    monitor = MonitorAlert.objects.create(kind="error_rate", subject="production/overloaded", value=0.2,
                                          threshold=0.05, window_start="2026-11-02T09:00:00Z", message="m")  # fmt: skip
    discovered = DiscoveredPrompt.objects.create(
        environment="production", system_hash="0" * 64, characters=12, text_redacted="You are kind",
        last_model="claude-haiku-4-5",
    )  # fmt: skip
    token = ApiToken.objects.filter(client=client).earliest("pk")
    release = Release.objects.filter(version=version).latest("pk")
    return {
        "user": outsider.pk, "group": Group.objects.get(name="Auditors").pk, "accessrequest": access_request.pk,
        "auditevent": AuditEvent.objects.earliest("sequence").pk, "price": price.pk,
        "price_history": _history_id(price), "usagerecord": UsageRecord.objects.earliest("pk").pk,
        "budgetalert": alert.pk, "budgetalert_history": _history_id(alert), "monitoralert": monitor.pk,
        "providerkey": key.pk, "providerkey_history": _history_id(key), "apiclient": client.pk,
        "apiclient_history": _history_id(client), "apitoken": token.pk, "apitoken_history": _history_id(token),
        "prompt": world["prompt"].pk, "prompt_history": _history_id(world["prompt"]),
        "promptversion": version.pk, "promptversion_history": _history_id(version), "draft": draft.pk,
        "in_review": submitted.pk, "release": release.pk, "release_history": _history_id(release),
        "run": Run.objects.earliest("pk").pk, "job": Job.objects.earliest("pk").pk,
        "batch": Batch.objects.earliest("pk").pk, "discoveredprompt": discovered.pk,
        "evaluationcase": case.pk, "evaluationcase_history": _history_id(case), "evaluationrun": evaluation.pk,
        "run_id": run_id, "job_id": job_id, "batch_id": batch_id, "message_batch_id": message_batch.json()["id"],
    }  # fmt: skip


# --- the walk ----------------------------------------------------------------------------------------------


def test_every_principal_gets_the_answer_the_table_gives_on_every_admin_page(principals, objects):
    mismatches = []
    for template, expected in matrix.ADMIN_PAGES.items():
        path = template.format(**objects)
        for principal, status in zip(matrix.ADMIN_PRINCIPALS, expected, strict=True):
            client = Client()
            if principals[principal] is not None:
                client.force_login(principals[principal], verified=principal != matrix.UNENROLLED)
            response = client.get(path)
            got = response.status_code
            if got != status:
                mismatches.append(f"GET {template} as {principal}: the table says {status}, got {got}")
            elif got == 302 and principal == matrix.UNENROLLED and response["Location"] != "/admin/mfa/enrol/":
                mismatches.append(f"GET {template} as {principal}: sent to {response['Location']}, not enrolment")

    assert not mismatches, "\n".join(mismatches)


def test_every_api_client_gets_the_answer_the_table_gives_on_every_endpoint(api_principals, objects):
    mismatches = []
    for (method, template, body), expected in matrix.API_ENDPOINTS.items():
        path = template.format(**objects)
        for principal, status in zip(matrix.API_PRINCIPALS, expected, strict=True):
            http = APIClient()
            if api_principals[principal] is not None:
                http.credentials(HTTP_AUTHORIZATION=f"Bearer {api_principals[principal]}")
            if method == "GET":
                got = http.get(path).status_code
            else:
                got = http.post(path, json.dumps(BODIES[body]), content_type="application/json").status_code
            if got != status:
                mismatches.append(f"{method} {template} [{body}] as {principal}: the table says {status}, got {got}")

    assert not mismatches, "\n".join(mismatches)


def test_every_page_and_endpoint_the_resolver_serves_has_an_entry_in_the_table(objects):
    walked = {resolve(template.format(**objects)).view_name for template in matrix.ADMIN_PAGES}
    walked |= {resolve(template.format(**objects)).view_name for _, template, _ in matrix.API_ENDPOINTS}
    registered = {
        f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist" for model in admin.site._registry
    }

    missing = route_names() - walked
    assert not missing, f"pages without an entry in core/permission_matrix.py: {sorted(missing)}"
    assert registered <= walked


def test_docs_permissions_md_is_the_table_as_generated(tmp_path):
    written = tmp_path / "permissions.md"
    call_command("permission_matrix", "--markdown", str(written))

    assert (matrix.DOCS_PAGE).read_text() == written.read_text(), (
        "docs/permissions.md is not the table: run `manage.py permission_matrix --markdown docs/permissions.md`"
    )
