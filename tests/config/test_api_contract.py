"""The API keeps its OpenAPI contract: schemathesis runs every check it has against the live schema of the
running app (a live server on the test database) and finds nothing."""

from __future__ import annotations

import subprocess
import sys

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


def test_schemathesis_finds_no_failure_of_any_check(live_server, api_world, tmp_path):
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)

    result = subprocess.run(
        [sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "--no-color",
         "run", f"{live_server.url}/api/schema/",
         "--max-examples", str(EXAMPLES_PER_OPERATION), "--seed", str(SEED), "--workers", "1",
         "--header", f"Authorization: Bearer {api_world['token']}"],
        capture_output=True, text=True, cwd=tmp_path, timeout=600,
    )  # fmt: skip

    assert result.returncode == 0, result.stdout[-30_000:] + result.stderr[-5_000:]
    assert "12 selected / 12 total" in result.stdout  # every operation was loaded from the schema
