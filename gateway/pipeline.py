"""The run pipeline (docs/contract.md §3): released version → variables → render → redact → route → reserve →
Anthropic → rehydrate → checks → settle → ledger → result.

`run_prepare` does everything that may refuse a request before any upstream call; `run_execute` and
`run_stream` then make the call. Every upstream call writes a ledger row, success or failure, and every
reservation is settled or released, also when a stream's caller goes away. No database connection is
held across the upstream call.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import re
import secrets
import string
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.utils import timezone

from core.errors import (
    DomainError,
    InternalError,
    NoProviderKey,
    PromptNotFound,
    RoleRequired,
    SpendCapExceeded,
)
from core.problems import domain_problem_body
from gateway.checks import output_checks_run
from gateway.discovery import Discovery, discovered_prompt_count
from gateway.documents import RunResult, document
from gateway.models import Run
from gateway.redaction.engine import Redaction, StreamRehydrator, custom_patterns, redact_variables
from gateway.streams import ClosingStream
from gateway.upstream import UPSTREAM_FAILURES, classify, message_create, message_stream, provider_key_check, retries_of
from keys.models import ApiClient, ProviderKey
from keys.selectors import active_provider_key
from prompts.models import PromptVersion
from prompts.rendering import render_values, unsendable, variables_validate
from prompts.services import prompt_version_verify, released_version_for_run
from prompts.specs import RoutingSpec, output_checks_of, redaction_of, routing_of
from usage.choices import CapScope, Endpoint, Outcome, Period, ReservationStatus
from usage.models import Price, SpendReservation
from usage.periods import reservation_ttl
from usage.pricing import TokenUsage, cost
from usage.selectors import decimal_text, price_for
from usage.services import Cap, spend_reservation_renew
from usage.settlement import call_settle, spend_reserve

logger = logging.getLogger(__name__)

_ALPHABET = string.ascii_letters + string.digits
# A stream renews its reservation this often while it flows, so the reaper never takes a live call's hold.
LEASE_RENEWAL_SECONDS = 60


@dataclass
class Prepared:
    """Everything decided before the upstream call. `client` is None for Tollgate's own calls
    (evaluations), which run in `environment` on its provider key and caps. `version` is None for a
    free-form call of the Anthropic-compatible endpoint; `params` is the Messages API body as it is sent
    (redacted)."""

    client: ApiClient | None
    version: PromptVersion | None
    environment: str
    endpoint: str
    request_id: str
    run_id: str
    params: dict[str, Any]
    redaction: Redaction
    requested_model: str
    model: str
    rule: str | None
    price: Price
    default_price: Price
    key: ProviderKey
    reservation: SpendReservation
    metadata: dict[str, str]
    started: float
    discovery: Discovery | None = None  # a free-form call's system prompt, for the inventory


@dataclass(frozen=True)
class Answer:
    """A completed call: the run result (RunResult) and Anthropic's message as it came (redacted)."""

    result: dict[str, Any]
    message: Any


def public_id(prefix: str) -> str:
    """The id callers see for a run, job or batch: a prefix and 22 random letters and digits."""
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(22))


def estimate_tokens(params: dict[str, Any]) -> int:
    """Tokens before the call, ≈ 4 characters a token: an estimate, for routing rules only."""
    size = _content_size(params.get("system", ""), len) + sum(
        _content_size(m["content"], len) for m in params["messages"]
    )
    return math.ceil(size / 4)


# The worst case a reservation holds rests on a bound, not an estimate: Claude's tokenizer works on UTF-8
# bytes, so a text is never more tokens than it has bytes; the request's framing (roles, system block) adds
# a few tokens, bounded generously here, and tool definitions add the API's own tool-use system prompt. An
# image is never more than MEDIA_TOKENS["image"] tokens (the API scales larger ones down); a PDF (or a
# document by URL or file) is bounded by the context window, while a document whose source is text is
# measured as text is. Every prompt token is priced at the dearest prompt-side rate that can
# apply (the cache write of the call's TTL when it is dearer than input), the output at max_tokens.
FRAMING_TOKENS = 64
FRAMING_TOKENS_PER_MESSAGE = 8
TOOLS_FRAMING_TOKENS = 1_000
MEDIA_TOKENS = {"image": 5_000, "document": 200_000}
TEXT_SOURCES = ("text", "content")


def _utf8_bytes(text: str) -> int:
    return len(text.encode())


def _content_size(value: Any, text_size: Callable[[str], int] = _utf8_bytes) -> int:
    """The size of a system prompt or a message's content: its text measured by `text_size` (by default
    UTF-8 bytes: a bound on its tokens), a fixed allowance per image or PDF, the JSON of anything else."""
    if isinstance(value, str):
        return text_size(value)
    if isinstance(value, list):
        return sum(_content_size(item, text_size) for item in value)
    if isinstance(value, dict):
        kind = value.get("type")
        if kind == "text":
            return text_size(str(value.get("text", "")))
        source = value.get("source")
        if kind in MEDIA_TOKENS and not (isinstance(source, dict) and source.get("type") in TEXT_SOURCES):
            return MEDIA_TOKENS[kind]
        if kind == "tool_result":
            return FRAMING_TOKENS_PER_MESSAGE + _content_size(value.get("content", ""), text_size)
    return text_size(json.dumps(value, ensure_ascii=False))


def input_tokens_bound(params: dict[str, Any]) -> int:
    """At most this many prompt tokens in a Messages API body."""
    messages = params["messages"]
    tools = params.get("tools")
    return (
        _content_size(params.get("system", ""))
        + sum(_content_size(message["content"]) for message in messages)
        + (TOOLS_FRAMING_TOKENS + _utf8_bytes(json.dumps(tools, ensure_ascii=False)) if tools else 0)
        + FRAMING_TOKENS
        + FRAMING_TOKENS_PER_MESSAGE * len(messages)
    )


def worst_case_cost(price: Price, params: dict[str, Any], *, cache_ttl: str, batch: bool = False) -> Decimal:
    """What the call of `params` can cost at most: what its reservation holds against the caps."""
    tokens, output = input_tokens_bound(params), params["max_tokens"]
    plain = TokenUsage(input_tokens=tokens, output_tokens=output)
    if cache_ttl == "off":
        return cost(price, plain, batch=batch)
    written = TokenUsage(
        cache_write_5m_tokens=tokens if cache_ttl == "5m" else 0,
        cache_write_1h_tokens=tokens if cache_ttl == "1h" else 0,
        output_tokens=output,
    )
    return max(cost(price, plain, batch=batch), cost(price, written, batch=batch))


def caps_for(key: ProviderKey, client: ApiClient | None) -> list[Cap]:
    caps = [
        Cap(
            CapScope.PROVIDER_KEY, key.cap_id, Period.MONTH, key.monthly_cap_usd, key.label, key.alert_threshold_percent
        )
    ]
    if key.daily_cap_usd is not None:
        caps.append(
            Cap(
                CapScope.PROVIDER_KEY, key.cap_id, Period.DAY, key.daily_cap_usd, key.label, key.alert_threshold_percent
            )
        )
    if client is not None and client.monthly_cap_usd is not None:
        caps.append(Cap(CapScope.API_CLIENT, client.pk, Period.MONTH, client.monthly_cap_usd, client.name))
    return caps


def ledger_base(
    *,
    client: ApiClient | None,
    version: PromptVersion | None,
    environment: str,
    endpoint: str,
    request_id: str,
    key: ProviderKey,
) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "environment": environment,
        "api_client_id": client.pk if client else None,
        "api_client_name": client.name if client else "",
        "provider_key_id": key.pk,
        "provider_key_last_four": key.last_four,
        "prompt_id": version.prompt_id if version else None,
        "prompt_slug": version.prompt.slug if version else "",
        "prompt_version": version.number if version else None,
        "endpoint": endpoint,
    }


def _route(
    intake: Intake, params: dict[str, Any], *, client: ApiClient | None, environment: str, request_id: str
) -> tuple[str, str | None]:
    """The model to call and the rule that chose it (None: the default model)."""
    version = intake.version
    routing = routing_of(version)
    picked = rule_for(routing, estimate_tokens(params))
    if picked is not None:
        return picked
    if routing.classifier is not None:
        answer = _classify(
            routing.classifier.prompt, client=client, environment=environment, intake=intake, request_id=request_id
        )
        route = _route_named(answer, routing.classifier.routes)
        if route:
            return routing.classifier.routes[route], f"classifier:{route}"
    return version.model, None


def rule_for(routing: RoutingSpec, tokens: int) -> tuple[str, str] | None:
    """The model of the first routing rule an input of `tokens` fits, and the rule's name."""
    for rule in routing.rules:
        if tokens <= rule.max_input_tokens:
            return rule.model, f"input<={rule.max_input_tokens}"
    return None


def _route_named(answer: str, routes: dict[str, str]) -> str | None:
    """The route the classifier's answer names: the whole answer, or the one route word in it."""
    if answer in routes:
        return answer
    named = [route for route in routes if re.search(rf"\b{re.escape(route.lower())}\b", answer)]
    return named[0] if len(named) == 1 else None


def _classify(slug: str, *, client: ApiClient | None, environment: str, intake: Intake, request_id: str) -> str:
    """Run the classifier prompt (its own ledger row, its own reservation) and return its answer. The
    caller's permission was checked for the prompt that routes, not for its classifier. It is given the
    values redacted at intake (with the stricter of both prompts' policies) and never the raw ones."""
    classifier = released_version_for_run(slug=slug, environment=environment)
    wanted = {variable["name"] for variable in classifier.variables}
    given = {name: value for name, value in intake.values.items() if name in wanted}
    prepared = run_prepare(
        client=client,
        environment=environment,
        slug=slug,
        variables=None,
        metadata={},
        endpoint=Endpoint.CLASSIFIER,
        request_id=request_id,
        intake=Intake(version=classifier, values=given, redaction=intake.redaction, verified=True),
    )
    return str(run_execute(prepared)["output"]).strip().lower()


@dataclass
class Intake:
    """A request accepted for a version: its variables validated and redacted."""

    version: PromptVersion
    values: dict[str, Any]
    redaction: Redaction
    verified: bool = False  # the version was read and checked against its hash for this very call


def _classifier_of(version: PromptVersion, environment: str) -> PromptVersion | None:
    """The classifier version that routes `version`'s calls in `environment`, if any is released there."""
    classifier = routing_of(version).classifier
    if classifier is None or not environment:
        return None
    try:
        return released_version_for_run(slug=classifier.prompt, environment=environment)
    except PromptNotFound:
        return None  # routing answers 404 for it when the call is made


def version_intake(version: PromptVersion, variables: Any, *, environment: str, verified: bool = False) -> Intake:
    """The variables validated against the version (400) and redacted, once, for every upstream call the
    request makes: when a classifier routes the version, its schema and redaction rules are applied too
    (a variable sensitive in either prompt is replaced whole), so the classifier, the main call and any
    retry all see the same redacted values."""
    variables_validate(version.variables, variables)
    schema, rules = list(version.variables), [redaction_of(version)]
    classifier = _classifier_of(version, environment)
    if classifier is not None:
        wanted = {variable["name"] for variable in classifier.variables}
        variables_validate(classifier.variables, {k: v for k, v in variables.items() if k in wanted})
        sensitive = {variable["name"] for variable in classifier.variables if variable.get("sensitive")}
        schema = [{**variable, "sensitive": variable.get("sensitive") or variable["name"] in sensitive}
                  for variable in schema]  # fmt: skip
        rules.append(redaction_of(classifier))
    patterns = [pattern for rule in rules for pattern in custom_patterns(rule)]
    values, redaction = redact_variables(schema, variables, patterns)
    return Intake(version=version, values=values, redaction=redaction, verified=verified)


def run_intake(*, client: ApiClient, slug: str, variables: Any) -> Intake:
    """The released version (404, tampering), the client's permission (403), the variables (400) and
    their redaction: everything that may refuse a request before it is run or queued."""
    version = released_version_for_run(slug=slug, environment=client.environment)
    if not client.may_run(slug):
        raise RoleRequired(f"This API client may not run '{slug}'.")
    return version_intake(version, variables, environment=client.environment)


def end_user_pseudonym(end_user: str) -> str:
    """The pseudonym of a caller's end-user id: a keyed hash (HMAC-SHA256 under TOLLGATE_PSEUDONYM_KEY),
    the same for the same id, so per-user reports still work, and no use without the key."""
    digest = hmac.new(settings.TOLLGATE_PSEUDONYM_KEY.encode(), end_user.encode(), hashlib.sha256).hexdigest()
    return "eu_" + digest[:32]


def metadata_intake(metadata: Any) -> dict[str, str]:
    """A request's metadata as it may leave and be stored: `end_user` pseudonymised, personal data in the
    `feature` and `user_tier` labels redacted (placeholders stay: labels are never rehydrated), every
    value text of at most 200 characters. Unknown keys are dropped."""
    if not isinstance(metadata, dict):
        metadata = {}
    clean: dict[str, str] = {}
    for name in ("feature", "user_tier", "end_user"):
        value = metadata.get(name)
        if value is None or value == "":
            continue
        text = value if isinstance(value, str) else json.dumps(value)
        problem = unsendable(text)
        if problem:
            raise DomainError("The metadata cannot be sent; see `errors`.", extra={"errors": {name: problem}})
        clean[name] = end_user_pseudonym(text) if name == "end_user" else Redaction().redact_text(text)[:200]
    return clean


def run_prepare(
    *,
    client: ApiClient | None,
    slug: str,
    variables: Any,
    metadata: dict[str, str],
    endpoint: str,
    request_id: str,
    intake: Intake | None = None,
    environment: str = "",
) -> Prepared:
    """Resolve, validate, render, redact, route and reserve. Raises the documented domain errors.

    Queued work and evaluations pass the `intake` they made beforehand: the version pinned, and the
    variables already validated and redacted. Without a client, `environment` says whose provider key
    and caps pay."""
    started = time.perf_counter()
    if client is not None:
        environment = client.environment
    if intake is None:
        if client is None:
            raise TypeError("run_prepare needs an API client or an intake")
        metadata = metadata_intake(metadata)
        intake = run_intake(client=client, slug=slug, variables=variables)
    elif not intake.verified:
        intake.version = prompt_version_verify(version=intake.version)  # tampering since it was accepted
    version = intake.version
    output_checks_of(version)  # read once the answer came: a setting its spec refuses stops the run before it is paid
    rendered = render_values(
        system_prompt=version.system_prompt, user_template=version.user_template, values=intake.values
    )
    params = message_params(version, model=version.model, system=rendered.system, messages=rendered.messages)
    key = provider_key_for(environment)
    model, rule = version.model, None
    if endpoint != Endpoint.CLASSIFIER:
        model, rule = _route(intake, params, client=client, environment=environment, request_id=request_id)
    return call_prepare(
        client=client,
        environment=environment,
        version=version,
        endpoint=endpoint,
        request_id=request_id,
        key=key,
        params={**params, "model": model},
        cache_ttl=version.cache_ttl,
        redaction=intake.redaction,
        metadata=metadata,
        rule=rule,
        started=started,
    )


def provider_key_for(environment: str) -> ProviderKey:
    """The environment's active provider key, checked against the allowed upstreams (503, 502)."""
    key = active_provider_key(environment=environment)
    if key is None:
        raise NoProviderKey(f"No active provider key is configured for {environment}.")
    provider_key_check(key)
    return key


def call_prepare(
    *,
    client: ApiClient | None,
    environment: str,
    version: PromptVersion | None,
    endpoint: str,
    request_id: str,
    key: ProviderKey,
    params: dict[str, Any],
    cache_ttl: str,
    redaction: Redaction,
    metadata: dict[str, str],
    rule: str | None = None,
    started: float | None = None,
    discovery: Discovery | None = None,
) -> Prepared:
    """Price and reserve the call of `params` (validated and redacted: exactly what will be sent), or
    record its refusal by a cap (SpendCapExceeded). `cache_ttl` is the dearest cache write it may make."""
    model = params["model"]
    requested_model = version.model if version is not None else model
    if metadata.get("end_user"):
        params = {**params, "metadata": {"user_id": metadata["end_user"][:200]}}
    price, default_price = price_for(model), price_for(requested_model)
    base = {
        **ledger_base(
            client=client, version=version, environment=environment, endpoint=endpoint, request_id=request_id, key=key
        ),
        "requested_model": requested_model,
        "model": model,
        "routing_rule": rule or "",
        "redactions": redaction.as_counts(),
        **metadata_fields(metadata),
    }
    run_id = public_id("run_")
    try:
        reservation = spend_reserve(
            request_id=request_id,
            caps=caps_for(key, client),
            amount=worst_case_cost(price, params, cache_ttl=cache_ttl),
            ledger={**base, "call_id": run_id},  # the call's key: its row is written once, by its settlement
        )
    except SpendCapExceeded:
        call_settle(record={**base, "outcome": Outcome.CAP_EXCEEDED})
        raise
    return Prepared(
        client=client,
        version=version,
        environment=environment,
        endpoint=endpoint,
        request_id=request_id,
        run_id=run_id,
        params=params,
        redaction=redaction,
        requested_model=requested_model,
        model=model,
        rule=rule,
        price=price,
        default_price=default_price,
        key=key,
        reservation=reservation,
        metadata=metadata,
        started=time.perf_counter() if started is None else started,
        discovery=discovery,
    )


def metadata_fields(metadata: dict[str, str]) -> dict[str, str]:
    """The ledger's metadata columns, from metadata that went through `metadata_intake`."""
    return {name: str(metadata.get(name, ""))[:200] for name in ("feature", "user_tier", "end_user")}


def message_params(version: PromptVersion, *, model: str, system: str, messages: list[Any]) -> dict[str, Any]:
    """The Messages API body of a version's call: the system prompt cacheable with the version's TTL."""
    system_block: Any = system
    if version.cache_ttl != "off":
        system_block = [
            {"type": "text", "text": system, "cache_control": {"type": "ephemeral", "ttl": version.cache_ttl}}
        ]
    params: dict[str, Any] = {
        "model": model,
        "max_tokens": version.max_tokens,
        "system": system_block,
        "messages": messages,
    }
    if version.stop_sequences:
        params["stop_sequences"] = version.stop_sequences
    return params


def _call_kwargs(prepared: Prepared) -> dict[str, Any]:
    return prepared.params


def _latency(prepared: Prepared, *, upstream_ms: int, ttft_ms: int | None) -> dict[str, int | None]:
    return {
        "total": round((time.perf_counter() - prepared.started) * 1000),
        "upstream": upstream_ms,
        "time_to_first_token": ttft_ms,
    }


def prompt_reference(version: PromptVersion | None) -> dict[str, Any] | None:
    return {"slug": version.prompt.slug, "version": version.number} if version is not None else None


def _result(
    prepared: Prepared,
    *,
    output: str,
    stop_reason: str | None,
    usage: TokenUsage,
    charged: Decimal,
    upstream_ms: int,
    ttft_ms: int | None,
    checks: dict[str, Any],
    upstream_request_id: str,
) -> dict[str, Any]:
    return document(
        RunResult,
        id=prepared.run_id,
        prompt=prompt_reference(prepared.version),
        environment=prepared.environment,
        model=prepared.model,
        routed={"from": prepared.requested_model, "rule": prepared.rule} if prepared.rule else None,
        output=output,
        stop_reason=stop_reason,
        usage={
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "cache_creation_input_tokens": usage.cache_write_5m_tokens + usage.cache_write_1h_tokens,
            "cache_read_input_tokens": usage.cache_read_tokens,
        },
        cost_usd=decimal_text(charged),
        latency_ms=_latency(prepared, upstream_ms=upstream_ms, ttft_ms=ttft_ms),
        redactions=prepared.redaction.as_counts(),
        checks=checks,
        upstream_request_id=upstream_request_id,
    )


def message_text(message: Any) -> str:
    """The text of an Anthropic message: its text blocks joined."""
    return "".join(block.text for block in message.content if block.type == "text")


def _succeed(
    prepared: Prepared, message: Any, *, upstream_ms: int, ttft_ms: int | None, retries: int, upstream_request_id: str
) -> Answer:
    """Settle, write the ledger row and the run, and build the result (output rehydrated). Whatever fails
    on the way, the call is recorded and its real cost settled before the error goes on."""
    usage = TokenUsage.from_api(message.usage)
    output_redacted = message_text(message)
    charged = cost(prepared.price, usage)
    latency = _latency(prepared, upstream_ms=upstream_ms, ttft_ms=ttft_ms)
    try:
        output = prepared.redaction.rehydrate(output_redacted)
        checks = output_checks_run(output_checks_of(prepared.version), output) if prepared.version else None
        result = _result(
            prepared,
            output=output,
            stop_reason=message.stop_reason,
            usage=usage,
            charged=charged,
            upstream_ms=upstream_ms,
            ttft_ms=ttft_ms,
            checks=checks or {"passed": True, "failed": []},  # a free-form call has no checks to fail
            upstream_request_id=upstream_request_id,
        )
    except Exception as exc:
        _record_internal_error(prepared, exc, usage=usage, latency=latency, retries=retries,
                               upstream_request_id=upstream_request_id)  # fmt: skip
        raise
    _close_and_record(
        prepared,
        settle=True,
        outcome=Outcome.OK,
        usage=usage,
        charged=charged,
        retries=retries,
        upstream_request_id=upstream_request_id,
        stop_reason=message.stop_reason or "",
        latency=result["latency_ms"],
        checks=checks,
        output_redacted=output_redacted,
        result=result,
    )
    return Answer(result=result, message=message)


def _close_and_record(
    prepared: Prepared,
    *,
    settle: bool,
    outcome: str,
    usage: TokenUsage,
    charged: Decimal,
    retries: int,
    latency: dict[str, int | None],
    result: dict[str, Any],
    upstream_request_id: str = "",
    stop_reason: str = "",
    error_class: str = "",
    checks: dict[str, Any] | None = None,
    output_redacted: str = "",
) -> None:
    """Settle the reservation (or give it back), write the ledger row and the run record (the request log)
    together (the call's settlement), so the spend counters and the ledger always agree. The ledger row is
    the reservation's write-ahead record completed with what the call did, and it is written only by
    whoever closes the reservation: a call the reaper took for a dead holder's has its row already. A run
    record that cannot be written is logged; the call is recorded all the same."""
    log = None
    if prepared.client is not None and prepared.endpoint != Endpoint.CLASSIFIER:  # API clients' runs
        log = Run(
            public_id=prepared.run_id,
            request_id=prepared.request_id,
            api_client=prepared.client,
            environment=prepared.environment,
            prompt_id=prepared.version.prompt_id if prepared.version else None,
            version=prepared.version,
            endpoint=prepared.endpoint,
            succeeded=outcome == Outcome.OK,
            result={k: v for k, v in result.items() if k != "output"},
            request_redacted=json.dumps(prepared.params["messages"], ensure_ascii=False),
            output_redacted=output_redacted,
            bodies_expire_at=timezone.now() + timedelta(days=settings.TOLLGATE_BODY_RETENTION_DAYS),
        )
    closed = call_settle(
        reservation=prepared.reservation,
        spent=charged if settle else None,
        record={
            **prepared.reservation.ledger,
            **usage.ledger_fields(),
            "cost_usd": charged,
            "default_model_cost_usd": cost(prepared.default_price, usage),
            "price": prepared.price,
            "latency_total_ms": latency["total"],
            "latency_upstream_ms": latency["upstream"],
            "time_to_first_token_ms": latency["time_to_first_token"],
            "outcome": outcome,
            "error_class": error_class,
            "retries": retries,
            "upstream_request_id": upstream_request_id,
            "stop_reason": stop_reason,
            "checks": checks or {},
        },
        log=log,
    ).settled
    if prepared.discovery is not None:
        discovered_prompt_count(prepared.discovery, client=prepared.client, environment=prepared.environment,
                                model=prepared.params["model"], usage=usage, charged=charged)  # fmt: skip
    if not closed:
        logger.error(
            "Run %s ended after its reservation expired; the reaper's ledger row stands for it (%s USD held)",
            prepared.request_id,
            prepared.reservation.amount_usd,
        )


def _fail(
    prepared: Prepared, exc: Exception, *, usage: TokenUsage, upstream_ms: int, ttft_ms: int | None
) -> DomainError:
    """Record a failed call (ledger row with its class, the hold given back or settled) and say how to answer."""
    failure = classify(exc)
    charged = cost(prepared.price, usage)
    latency = _latency(prepared, upstream_ms=upstream_ms, ttft_ms=ttft_ms)
    _close_and_record(
        prepared,
        settle=bool(charged),  # tokens already billed; else the hold is given back
        outcome=failure.outcome,
        usage=usage,
        charged=charged,
        retries=retries_of(exc),
        latency=latency,
        result={"id": prepared.run_id, "error": {"code": failure.code, "status": failure.status}},
        error_class=type(exc).__name__,
        upstream_request_id=getattr(exc, "request_id", None) or "",
    )
    logger.warning("Upstream call failed for %s: %s (%s)", prepared.request_id, failure.code, type(exc).__name__)
    return failure.error(caller_wrote_body=prepared.endpoint == Endpoint.ANTHROPIC)


def _record_internal_error(
    prepared: Prepared,
    exc: BaseException,
    *,
    usage: TokenUsage,
    latency: dict[str, int | None],
    retries: int = 0,
    upstream_request_id: str = "",
    output_redacted: str = "",
) -> None:
    """Tollgate failed after the reservation (in the SDK before the request left, or after the answer
    came): the call gets its ledger row (`internal_error`, the exception's class) and the tokens it used
    are settled; the error then goes on to the caller as a 500. Idempotent with a normal close: a
    reservation already settled is left alone."""
    if _closed(prepared):
        return
    charged = cost(prepared.price, usage)
    _close_and_record(
        prepared,
        settle=bool(charged),
        outcome=Outcome.INTERNAL_ERROR,
        usage=usage,
        charged=charged,
        retries=retries,
        latency=latency,
        result={"id": prepared.run_id, "error": {"code": "internal_error", "status": 500}},
        error_class=type(exc).__name__,
        upstream_request_id=upstream_request_id,
        output_redacted=output_redacted,
    )
    logger.error("Run %s failed inside Tollgate (%s); recorded", prepared.request_id, type(exc).__name__)


def _closed(prepared: Prepared) -> bool:
    """Whether the reservation was settled or released already (its call then has its ledger row)."""
    prepared.reservation.refresh_from_db(fields=["status"])
    return prepared.reservation.status != ReservationStatus.HELD


def run_execute(prepared: Prepared) -> dict[str, Any]:
    """The synchronous call's run result (see `call_execute`)."""
    return call_execute(prepared).result


def call_execute(prepared: Prepared) -> Answer:
    """The synchronous call. Returns the answer or raises UpstreamError (or, on a fault of Tollgate's
    own, the exception, after the call was recorded)."""
    began = time.perf_counter()
    try:
        reply = message_create(prepared.key, _call_kwargs(prepared))
        upstream_ms = round((time.perf_counter() - began) * 1000)
    except UPSTREAM_FAILURES as exc:
        raise _fail(
            prepared, exc, usage=TokenUsage(), upstream_ms=round((time.perf_counter() - began) * 1000), ttft_ms=None
        ) from None
    except Exception as exc:
        upstream_ms = round((time.perf_counter() - began) * 1000)
        _record_internal_error(prepared, exc, usage=TokenUsage(),
                               latency=_latency(prepared, upstream_ms=upstream_ms, ttft_ms=None))  # fmt: skip
        raise
    return _succeed(
        prepared,
        reply.message,
        upstream_ms=upstream_ms,
        ttft_ms=None,
        retries=reply.retries,
        upstream_request_id=reply.request_id,
    )


def sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


class StreamWire:
    """How a stream's events are written. This one is the run endpoint's: run.started, delta…, then
    run.completed or error, placeholders held back until complete (the Anthropic-compatible endpoint has
    its own: gateway.compat.wire). `started` is written before the upstream call; `event` is called with
    each event of the SDK's stream; `completed` once the call is settled; `failed` with the error to report."""

    def __init__(self, prepared: Prepared) -> None:
        self.prepared = prepared
        self.rehydrator = StreamRehydrator(prepared.redaction)

    def started(self) -> Iterator[bytes]:
        prepared = self.prepared
        yield sse("run.started", {"id": prepared.run_id, "prompt": prompt_reference(prepared.version),
                                  "model": prepared.model})  # fmt: skip

    def event(self, event: Any) -> Iterator[bytes]:
        if event.type == "content_block_delta" and event.delta.type == "text_delta":
            visible = self.rehydrator.feed(event.delta.text)
            if visible:
                yield sse("delta", {"text": visible})

    def completed(self, answer: Answer) -> Iterator[bytes]:
        tail = self.rehydrator.flush()
        if tail:
            yield sse("delta", {"text": tail})
        yield sse("run.completed", answer.result)

    def document(self, answer: Answer) -> dict[str, Any]:
        """What an idempotent replay of this stream is made from."""
        return answer.result

    def failed(self, error: DomainError) -> bytes:
        return sse("error", domain_problem_body(error))


def run_stream(
    prepared: Prepared, wire: StreamWire | None = None, *, completed: dict[str, Any] | None = None
) -> ClosingStream:
    """The call as server-sent events, written by `wire` (the run endpoint's by default). If the caller
    goes away, the call is recorded and the reservation settled anyway; if the body is closed before the
    call was made, the hold is given back. `completed` receives the wire's document once the run has
    completed."""

    def give_back_if_unstarted(started: bool) -> None:
        if not started:  # closed before the call was made: nothing was spent
            call_settle(record=None, reservation=prepared.reservation)

    events = _stream_events(prepared, wire or StreamWire(prepared), completed)
    return ClosingStream(events, on_close=give_back_if_unstarted)


def _stream_events(prepared: Prepared, wire: StreamWire, completed: dict[str, Any] | None) -> Iterator[bytes]:
    try:
        yield from wire.started()
    except GeneratorExit:  # the caller left before the upstream call: nothing was spent
        call_settle(record=None, reservation=prepared.reservation)
        raise
    began = time.perf_counter()
    ttft_ms: int | None = None
    parts: list[str] = []
    finished = False
    stream = None
    try:
        renewed = time.monotonic()
        with message_stream(prepared.key, _call_kwargs(prepared)) as stream:
            for event in stream:
                if event.type in DERIVED_EVENTS:
                    continue
                if event.type == "content_block_delta" and event.delta.type == "text_delta":
                    if ttft_ms is None:
                        ttft_ms = round((time.perf_counter() - began) * 1000)
                    parts.append(event.delta.text)
                if time.monotonic() - renewed > LEASE_RENEWAL_SECONDS:  # a long stream keeps its hold alive
                    spend_reservation_renew(reservation=prepared.reservation, ttl=reservation_ttl())
                    renewed = time.monotonic()
                yield from wire.event(event)
            final = stream.get_final_message()
        answer = _succeed(
            prepared,
            final,
            upstream_ms=round((time.perf_counter() - began) * 1000),
            ttft_ms=ttft_ms,
            retries=retries_of(stream.response),
            upstream_request_id=stream.response.headers.get("request-id", ""),
        )
        finished = True
        if completed is not None:
            completed.update(wire.document(answer))
        yield from wire.completed(answer)
    except UPSTREAM_FAILURES as exc:
        error = _fail(
            prepared,
            exc,
            usage=_partial_usage(stream),
            upstream_ms=round((time.perf_counter() - began) * 1000),
            ttft_ms=ttft_ms,
        )
        finished = True
        yield wire.failed(error)
    except GeneratorExit:
        if not finished:  # the caller disconnected mid-stream: record the call with the tokens it used
            finished = True
            _caller_gone(prepared, stream, began=began, ttft_ms=ttft_ms, output_redacted="".join(parts))
        raise
    except Exception as exc:  # a fault of Tollgate's own: recorded, then an error event
        if not finished:
            finished = True
            _record_internal_error(
                prepared,
                exc,
                usage=_partial_usage(stream),
                latency=_latency(prepared, upstream_ms=round((time.perf_counter() - began) * 1000), ttft_ms=ttft_ms),
                output_redacted="".join(parts),
            )
        logger.exception("Stream %s failed inside Tollgate", prepared.request_id)
        yield wire.failed(InternalError("The run failed on our side; the request id identifies it."))


# Events the SDK's stream derives from the raw ones (the raw ones carry the same data).
DERIVED_EVENTS = frozenset({"text", "input_json", "citation", "thinking", "signature"})


def replay_stream(result: dict[str, Any]) -> Iterator[bytes]:
    """A completed run's result as the events its stream sent: the whole answer in one delta."""
    yield sse("run.started", {"id": result["id"], "prompt": result["prompt"], "model": result["model"]})
    if result["output"]:
        yield sse("delta", {"text": result["output"]})
    yield sse("run.completed", result)


def _partial_usage(stream: Any) -> TokenUsage:
    snapshot = getattr(stream, "current_message_snapshot", None) if stream is not None else None
    return TokenUsage.from_api(snapshot.usage) if snapshot is not None else TokenUsage()


def _caller_gone(prepared: Prepared, stream: Any, *, began: float, ttft_ms: int | None, output_redacted: str) -> None:
    usage = _partial_usage(stream)
    charged = cost(prepared.price, usage)
    latency = _latency(prepared, upstream_ms=round((time.perf_counter() - began) * 1000), ttft_ms=ttft_ms)
    _close_and_record(
        prepared,
        settle=True,
        outcome=Outcome.CLIENT_ERROR,
        usage=usage,
        charged=charged,
        retries=0,
        latency=latency,
        result={"id": prepared.run_id, "error": {"code": "client_disconnected"}},
        error_class="ClientDisconnected",
        output_redacted=output_redacted,
    )
