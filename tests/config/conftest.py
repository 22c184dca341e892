from __future__ import annotations

from decimal import Decimal

import pytest

from keys import services as key_services
from prompts import services
from tests.factories import version_content


@pytest.fixture
def api_world(sandbox, author, approver, custodian):
    """A prompt released to production, a sandbox key, and an API client (with its token) whose rate
    limit and cap no test request meets."""
    prompt = services.prompt_create(actor=author, slug="support-summary", name="Support summary", purpose="x",
                                    owner=author)  # fmt: skip
    version = services.prompt_version_create(
        actor=author, prompt=prompt, content=version_content(), change_summary="v1"
    )
    services.prompt_version_submit(actor=author, version=version)
    services.prompt_version_approve(actor=approver, version=version, note="ok")
    for environment in ("staging", "production"):
        services.prompt_version_release(actor=approver, version=version, environment=environment, reason="x")
    key_services.provider_key_create(actor=custodian, environment="production", label="sandbox",
                                     secret="sk-ant-sandbox-test-key-0001", owner=custodian, base_url=sandbox.url,
                                     monthly_cap_usd=Decimal(10_000))  # fmt: skip
    client, _ = key_services.api_client_create(actor=custodian, name="edge", environment="production",
                                               owner=custodian, all_prompts=True,
                                               rate_limit_per_minute=1_000_000)  # fmt: skip
    _, token = key_services.api_token_issue(actor=custodian, client=client, label="t")
    return {"token": token, "client": client, "slug": "support-summary"}
