"""The documents the gateway answers with and sends to webhooks, one pydantic model each: the same class
builds the JSON (`document(...)`) and describes it in the OpenAPI schema (drf-spectacular reads pydantic
models), so what is documented is what is sent."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, WithJsonSchema

# Timestamps as Python writes them (`2026-11-30T16:05:00.123456+00:00`): what the API has always sent.
Timestamp = Annotated[
    datetime,
    PlainSerializer(lambda value: value.isoformat(), return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]


class _Document(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class PromptReference(_Document):
    slug: str
    version: int


class RunRouting(_Document):
    from_: str = Field(alias="from", description="The model the version names; `model` is the one routed to.")
    rule: str


class RunTokens(_Document):
    input_tokens: int
    output_tokens: int
    cache_creation_input_tokens: int
    cache_read_input_tokens: int


class RunLatency(_Document):
    total: int = Field(description="Milliseconds from the request to the answer.")
    upstream: int = Field(description="Milliseconds waiting for Anthropic.")
    time_to_first_token: int | None


class RunChecks(_Document):
    passed: bool
    failed: list[str] = Field(description="The output checks that failed, by name.")


class RunResult(_Document):
    """The result of a run (POST /api/v1/prompts/{slug}/run, and a job's `result`)."""

    id: str
    prompt: PromptReference | None = Field(description="Null for a free-form call (docs/anthropic.md).")
    environment: str
    model: str
    routed: RunRouting | None
    output: str | None
    stop_reason: str | None
    usage: RunTokens
    cost_usd: str = Field(description="Exact cost, a decimal string.")
    latency_ms: RunLatency
    redactions: dict[str, int] = Field(description="Values replaced by placeholders, per kind.")
    checks: RunChecks
    upstream_request_id: str


class StoredRun(_Document):
    """A past run (GET /api/v1/runs/{id}): its result as stored, the output redacted (placeholders, not
    personal data) and null once the bodies expired. A failed run holds `error` in place of the result's
    usage, output and checks. Stored results are read as written, so a field of an older result is kept."""

    model_config = ConfigDict(frozen=True, extra="allow", populate_by_name=True)

    id: str
    prompt: PromptReference | None = None
    environment: str | None = None
    model: str | None = None
    routed: RunRouting | None = None
    output: str | None
    stop_reason: str | None = None
    usage: RunTokens | None = None
    cost_usd: str | None = None
    latency_ms: RunLatency | None = None
    redactions: dict[str, int] | None = None
    checks: RunChecks | None = None
    upstream_request_id: str | None = None
    error: dict[str, Any] | None = None
    output_redacted: Literal[True]
    bodies_expire_at: Timestamp


class JobDocument(_Document):
    """A job: its status and, once done, the run result or the problem it failed with."""

    id: str
    status: Literal["queued", "running", "succeeded", "failed"]
    prompt: PromptReference
    environment: str
    attempts: int
    created_at: Timestamp
    started_at: Timestamp | None
    finished_at: Timestamp | None
    result: RunResult | None = Field(description="The run result, once succeeded.")
    error: dict[str, Any] | None = Field(description="The problem body, once failed.")
    callback_url: str | None


class BatchDocument(_Document):
    """A batch: its status and how many items are in each state."""

    id: str
    status: Literal["in_progress", "canceling", "ended", "failed"]
    prompt: PromptReference
    environment: str
    model: str
    counts: dict[str, int] = Field(description="`total`, and the items per status.")
    created_at: Timestamp
    ended_at: Timestamp | None
    results_url: str
    callback_url: str | None


def document(model: type[_Document], /, **values: Any) -> dict[str, Any]:
    """`values` checked against `model` and written as the API sends them (a field not given is left out)."""
    return model(**values).model_dump(mode="json", by_alias=True, exclude_unset=True)
