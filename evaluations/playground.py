"""The playground: an author tries a version that is not approved yet with sample variables, before
submitting it (or while it is in review), and sees what was sent, what redaction replaced, the answer,
its tokens, cost and output checks.

A try is a real call through the gateway's pipeline, exactly as an evaluation case is run
(`evaluations.runner`): the variables validated and redacted once (`version_intake`), rendered, routed,
reserved against the caps and sent (`run_prepare`, `run_execute`), with a ledger row of its own endpoint
(`playground`). It always runs in development, on the development provider key and under its caps,
whatever the version's status: a version that is approved, rejected or retired is refused (it is tried
where it is released, through the API). Each try is paid, so a person may make at most
TOLLGATE_PLAYGROUND_RUNS_PER_MINUTE of them a minute, and each is recorded in the audit trail (who, which
version, the request id that names its ledger row, the outcome and cost; never the variables).
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User

from audit.services import audit_event_record
from core.environments import Environment
from core.errors import DomainError, IllegalTransition, RateLimited
from core.governance import require_permission
from evaluations.models import EvaluationCase
from gateway.pipeline import run_execute, run_prepare, version_intake
from keys.ratelimit import rate_limit_counter, window_hit, window_seconds_left
from prompts.choices import VersionStatus
from prompts.models import PromptVersion
from prompts.rendering import render_values
from usage.choices import Endpoint
from usage.models import UsageRecord

PERMISSION = "prompts.try_promptversion"
# Drafts, and versions in review (their content frozen, the reviewer's question reproduced): never a version
# that was decided. Whatever the status, the call is made in development.
TRIABLE = (VersionStatus.DRAFT, VersionStatus.IN_REVIEW)
ENVIRONMENT = Environment.DEVELOPMENT


@dataclass
class PlaygroundRun:
    """One try and what the page shows of it. `sent` is true when the call left for Anthropic: `system` and
    `user_message` are then exactly what was sent (redacted); otherwise what would have been. `output` is
    the answer rehydrated for the author, as the run API answers it. `error` is the documented error that
    ended the try (a refused cap, an upstream failure), with the ledger row the pipeline wrote for it."""

    request_id: str
    system: str
    user_message: str
    sent: bool = False
    replacements: list[tuple[str, str]] = field(default_factory=list)  # (placeholder, kind)
    model: str = ""
    output: str = ""
    stop_reason: str = ""
    checks: dict[str, Any] | None = None
    ledger: UsageRecord | None = None
    error: DomainError | None = None

    @property
    def cost_usd(self) -> Decimal | None:
        return self.ledger.cost_usd if self.ledger is not None else None


def playground_open(*, actor: User, version: PromptVersion) -> PromptVersion:
    """The version as it is now, if `actor` may try it (403 without the permission, 409 when it is not a
    draft or in review)."""
    require_permission(actor, PERMISSION, "try prompt versions in the playground")
    version = PromptVersion.objects.select_related("prompt").get(pk=version.pk)
    if version.status not in TRIABLE:
        raise IllegalTransition(
            f"{version} is {version.get_status_display().lower()}; the playground tries drafts and versions in "
            "review only (a decided version runs where it is released)."
        )
    return version


def playground_samples(version: PromptVersion) -> list[EvaluationCase]:
    """The prompt's active evaluation cases: their variables are the samples the form is filled from."""
    return list(version.prompt.evaluation_cases.filter(active=True).order_by("name"))


def playground_sample_variables(version: PromptVersion, case: EvaluationCase | None) -> dict[str, Any]:
    """A case's variables that the version declares (a case is the prompt's, and may predate the draft)."""
    if case is None or not isinstance(case.variables, dict):
        return {}
    declared = {variable["name"] for variable in version.variables}
    return {name: value for name, value in case.variables.items() if name in declared}


def _limit(actor: User) -> None:
    """At most TOLLGATE_PLAYGROUND_RUNS_PER_MINUTE tries a person a minute, counted in fixed one-minute
    windows as API clients' requests are (keys.ratelimit)."""
    now = time.time()
    count = window_hit(rate_limit_counter(f"playground:{actor.pk}", now))
    if count > settings.TOLLGATE_PLAYGROUND_RUNS_PER_MINUTE:
        retry_after = window_seconds_left(now)
        raise RateLimited(
            retry_after,
            f"You have made {settings.TOLLGATE_PLAYGROUND_RUNS_PER_MINUTE} playground runs this minute; "
            f"retry in {retry_after} s.",
        )


def _system_text(system: Any) -> str:
    """The system prompt of a Messages API body: a text, or text blocks (with cache control)."""
    if isinstance(system, str):
        return system
    return "".join(block.get("text", "") for block in system if isinstance(block, dict))


def _ledger_row(request_id: str) -> UsageRecord | None:
    """The try's own ledger row (a routing classifier's call, if any, has a row of its own endpoint)."""
    return UsageRecord.objects.filter(request_id=request_id, endpoint=Endpoint.PLAYGROUND).order_by("-pk").first()


def playground_run(*, actor: User, version: PromptVersion, variables: Any) -> PlaygroundRun:
    """Try `version` with `variables` on the development key. Raises what refuses the try before anything
    is reserved (403, 409, InvalidVariables, RateLimited); a refused cap or a failed call is returned as
    the run's `error` with the ledger row the pipeline wrote for it."""
    version = playground_open(actor=actor, version=version)
    intake = version_intake(version, variables, environment=ENVIRONMENT)  # InvalidVariables: nothing reserved
    _limit(actor)
    request_id = f"playground-{version.pk}-{secrets.token_hex(8)}"
    rendered = render_values(
        system_prompt=version.system_prompt, user_template=version.user_template, values=intake.values
    )
    run = PlaygroundRun(
        request_id=request_id,
        system=rendered.system,
        user_message=rendered.messages[0]["content"],
        replacements=sorted(
            ((placeholder, kind) for (kind, _), placeholder in intake.redaction.by_value.items()),
            key=lambda item: item[0],
        ),
    )
    try:
        prepared = run_prepare(
            client=None,
            environment=ENVIRONMENT,
            slug=version.prompt.slug,
            variables=None,  # the intake's, validated and redacted
            metadata={"feature": "playground"},
            endpoint=Endpoint.PLAYGROUND,
            request_id=request_id,
            intake=intake,
        )
        run.sent, run.model = True, prepared.model
        run.system = _system_text(prepared.params["system"])
        run.user_message = str(prepared.params["messages"][0]["content"])
        result = run_execute(prepared)
    except DomainError as exc:  # a refused cap, no development key, an upstream failure: shown, recorded
        run.error = exc
    else:
        run.output, run.stop_reason, run.checks = str(result["output"]), result["stop_reason"] or "", result["checks"]
    run.ledger = _ledger_row(request_id)
    audit_event_record(
        action="prompt_version.playground_run",
        actor=actor,
        target=version,
        changes={
            "environment": ENVIRONMENT.value,
            "request_id": request_id,
            "outcome": run.ledger.outcome if run.ledger is not None else run.error.code if run.error else "",
            "cost_usd": str(run.cost_usd) if run.cost_usd is not None else None,
        },
    )
    return run
