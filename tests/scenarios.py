"""Scenarios the prompts, gateway and evaluations tests share (a pytest plugin of tests/conftest.py): a prompt
and its versions through their life cycle, a released world with a sandbox key and an API client, a webhook
receiver, an evaluation suite."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest
from rest_framework.test import APIClient as HttpClient

from evaluations.models import EvaluationCase
from evaluations.services import evaluation_case_save
from keys import services as key_services
from prompts import services
from tests.factories import version_content
from tests.gateway.upstream import EMAIL, Receiver


@pytest.fixture
def prompt(author):
    return services.prompt_create(
        actor=author,
        slug="support-summary",
        name="Support ticket summary",
        purpose="Summaries for the support queue",
        owner=author,
        data_categories=["personal"],
    )


@pytest.fixture
def draft(prompt, author):
    return services.prompt_version_create(
        actor=author, prompt=prompt, content=version_content(), change_summary="First version"
    )


@pytest.fixture
def in_review(draft, author):
    return services.prompt_version_submit(actor=author, version=draft)


@pytest.fixture
def approved(in_review, approver):
    return services.prompt_version_approve(actor=approver, version=in_review, note="Reviewed wording and schema")


@pytest.fixture
def world(sandbox, author, approver, custodian, settings):
    """A released prompt, a sandbox key and an API client with a token, in production."""
    settings.TOLLGATE_UPSTREAM_MAX_RETRIES = 2
    prompt = services.prompt_create(
        actor=author, slug="support-summary", name="Support summary", purpose="x", owner=author
    )
    version = services.prompt_version_create(
        actor=author, prompt=prompt, content=version_content(), change_summary="v1"
    )
    services.prompt_version_submit(actor=author, version=version)
    services.prompt_version_approve(actor=approver, version=version, note="ok")
    for environment in ("staging", "production"):
        services.prompt_version_release(actor=approver, version=version, environment=environment, reason="x")
    key = key_services.provider_key_create(
        actor=custodian,
        environment="production",
        label="sandbox",
        secret="sk-ant-sandbox-test-key-0001",
        owner=custodian,
        base_url=sandbox.url,
        monthly_cap_usd=Decimal(100),
    )
    client, _ = key_services.api_client_create(
        actor=custodian,
        name="support-app",
        environment="production",
        owner=custodian,
        all_prompts=True,
        rate_limit_per_minute=1000,
    )
    _, token = key_services.api_token_issue(actor=custodian, client=client, label="t")
    http = HttpClient()
    http.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return {"http": http, "version": version, "key": key, "client": client, "sandbox": sandbox, "prompt": prompt}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver([])
    yield receiver
    receiver.server.shutdown()


@pytest.fixture
def suite(world, custodian, author):
    """The world's prompt with two cases, and a development key for evaluations to run on."""
    key_services.provider_key_create(
        actor=custodian,
        environment="development",
        label="sandbox-dev",
        secret="sk-ant-sandbox-test-key-0002",
        owner=custodian,
        base_url=world["sandbox"].url,
        monthly_cap_usd=Decimal(100),
    )
    variables = {"ticket": "The export button does nothing since this morning.", "customer_email": EMAIL}
    good = EvaluationCase(
        prompt=world["prompt"],
        name="export button",
        variables=variables,
        expectations=[
            {"contains": "export button"},
            {"contains": EMAIL},  # only true once the answer is rehydrated
            {"regex": r"since this \w+"},
            {
                "similar_to": "Summarise this ticket: the export button does nothing since this morning",
                "threshold": 0.6,
            },
        ],
    )
    bad = EvaluationCase(
        prompt=world["prompt"], name="mentions a refund", variables=variables, expectations=[{"contains": "refund"}]
    )
    for case in (good, bad):
        evaluation_case_save(actor=author, case=case, reason="regression suite")
    return {**world, "good": good, "bad": bad}
