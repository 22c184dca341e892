"""The API keeps its OpenAPI contract: schemathesis runs every check it has against the live schema of the
running app (a live server on the test database) and finds nothing."""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal

import pytest

from keys import services as key_services
from prompts import services
from tests.factories import version_content

# Every built-in check, on every operation, except one check on three operations.
#
# positive_data_acceptance sends schema-valid requests and expects them accepted. It is off for the three
# operations that run a prompt, and only there: their `variables` are checked against the variables of
# the prompt named in the path (which exist, their types, lengths and choices), and the schema cannot say
# that: one schema serves every prompt and environment, and publishing each prompt's variables in a
# public document would disclose which prompts exist. Their 400 `invalid_variables` answers stay under
# every other check (documented status, content type, problem body, never a 5xx).
#
# The cache is off so that a run never replays requests recorded by an earlier one.
CONFIG = """
[cache]
enabled = false

[checks]
enabled = true

[[operations]]
include-path-regex = '^/api/v1/prompts/[{]slug[}]/(run|jobs|batches)$'
checks.positive_data_acceptance.enabled = false
"""
EXAMPLES_PER_OPERATION = 30
SEED = 1


@pytest.fixture
def contract_world(live_server, sandbox, author, approver, custodian):
    """A released prompt, a sandbox key and an API client whose rate and cap no generated request meets."""
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
    client, _ = key_services.api_client_create(actor=custodian, name="contract", environment="production",
                                               owner=custodian, all_prompts=True,
                                               rate_limit_per_minute=1_000_000)  # fmt: skip
    _, token = key_services.api_token_issue(actor=custodian, client=client, label="t")
    return {"url": live_server.url, "token": token}


def test_schemathesis_finds_no_failure_of_any_check(contract_world, tmp_path):
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)

    result = subprocess.run(
        [sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "--no-color",
         "run", f"{contract_world['url']}/api/schema/",
         "--max-examples", str(EXAMPLES_PER_OPERATION), "--seed", str(SEED), "--workers", "1",
         "--header", f"Authorization: Bearer {contract_world['token']}"],
        capture_output=True, text=True, cwd=tmp_path, timeout=600,
    )  # fmt: skip

    assert result.returncode == 0, result.stdout[-30_000:] + result.stderr[-5_000:]
    assert "12 selected / 12 total" in result.stdout  # every operation was loaded from the schema
