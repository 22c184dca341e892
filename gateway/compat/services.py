"""What the Anthropic-compatible endpoint does beyond a call (docs/anthropic.md): the calls it prepares
for the pipeline, token counts (free at Anthropic, still a ledger row: every upstream call has one), and
the models a client may name."""

from __future__ import annotations

from typing import Any

from gateway.compat.intake import PROMPT_PREFIX, MessagesCall
from gateway.counting import COUNTED_FIELDS, tokens_count_recorded
from gateway.pipeline import Prepared, call_prepare, ledger_base, metadata_fields, provider_key_for
from keys.models import ApiClient
from prompts.selectors import releases_in
from usage.choices import Endpoint
from usage.models import Price


def messages_prepare(client: ApiClient, call: MessagesCall, *, request_id: str) -> Prepared:
    """Reserve the call's worst case on the client's environment's key and caps (or record the refusal)."""
    return call_prepare(
        client=client,
        environment=client.environment,
        version=call.version,
        endpoint=Endpoint.ANTHROPIC,
        request_id=request_id,
        key=provider_key_for(client.environment),
        params=call.params,
        cache_ttl=call.cache_ttl,
        redaction=call.redaction,
        metadata=call.metadata,
        rule=call.rule,
        discovery=call.discovery,
    )


def tokens_count(client: ApiClient, call: MessagesCall, *, request_id: str) -> int:
    """The input tokens of the call as it would be sent (system prompt supplied, text redacted)."""
    key = provider_key_for(client.environment)
    params = {name: value for name, value in call.params.items() if name in COUNTED_FIELDS}
    record: dict[str, Any] = {
        **ledger_base(
            client=client,
            version=call.version,
            environment=client.environment,
            endpoint=Endpoint.COUNT_TOKENS,
            request_id=request_id,
            key=key,
        ),
        "requested_model": call.version.model if call.version else params["model"],
        "model": params["model"],
        "redactions": call.redaction.as_counts(),
        **metadata_fields(call.metadata),
    }
    return tokens_count_recorded(key=key, params=params, record=record, caller_wrote_body=True)


def models_for(client: ApiClient) -> list[dict[str, Any]]:
    """The models this client may name, in Anthropic's ModelInfo shape: `prompt:<slug>` for each prompt
    released to its environment that it may run, then its free-form models (if it may make free-form calls)."""
    models = [
        {
            "type": "model",
            "id": PROMPT_PREFIX + release.prompt.slug,
            "display_name": f"{release.prompt.name} (v{release.version.number})",
            "created_at": release.released_at.isoformat().replace("+00:00", "Z"),
        }
        for release in releases_in(client.environment)
        if client.may_run(release.prompt.slug)
    ]
    if client.freeform:
        since = dict(Price.objects.filter(model__in=client.freeform_models).values_list("model", "effective_from"))
        models += [
            {
                "type": "model",
                "id": model,
                "display_name": model,
                "created_at": (since.get(model) or client.created_at).isoformat().replace("+00:00", "Z"),
            }
            for model in client.freeform_models
        ]
    return models
