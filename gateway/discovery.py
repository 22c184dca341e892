"""Prompt discovery (docs/anthropic.md): every distinct system prompt seen on free-form calls of the
Anthropic-compatible endpoint, inventoried by the hash of its redacted text — first and last seen, which
clients send it, calls, tokens, cost, whether it carried personal data — so compliance staff see what
prompts run without reading anybody's code. The redacted text is kept for TOLLGATE_BODY_RETENTION_DAYS
after the prompt was last seen (`request_bodies_purge` blanks it then); the counts stay."""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.validators import validate_slug
from django.db import IntegrityError, connection, transaction
from django.db.models import Case, CharField, F, QuerySet, TextField, Value, When
from django.db.models.expressions import RawSQL
from django.utils import timezone

from audit.services import audit_event_record
from core.errors import DomainError, InvalidVersion
from core.governance import require_permission
from gateway.models import DiscoveredPrompt
from keys.models import ApiClient
from prompts.choices import CacheTTL, DataCategory
from prompts.models import Prompt, PromptVersion
from prompts.services import prompt_create, prompt_version_create
from usage.pricing import TokenUsage

# (environment, hash, client id) linked in this process by a committed transaction: the link is written once,
# then only counted.
_linked: set[tuple[str, str, int]] = set()
_linked_lock = threading.Lock()


@dataclass(frozen=True)
class Discovery:
    """A free-form call's system prompt as the inventory keeps it."""

    system_hash: str
    text_redacted: str
    personal_data: bool


def discovery_of(system_redacted: str, *, personal_data: bool) -> Discovery:
    """The inventory's view of a system prompt already redacted (placeholders in place of personal data,
    so one template sent for many people is one prompt)."""
    digest = hashlib.sha256(system_redacted.encode()).hexdigest()
    return Discovery(system_hash=digest, text_redacted=system_redacted, personal_data=personal_data)


def discovered_prompt_count(
    discovery: Discovery,
    *,
    client: ApiClient | None,
    environment: str,
    model: str,
    usage: TokenUsage,
    charged: Decimal,
) -> None:
    """Count one upstream call of `discovery`'s prompt: one UPDATE once the prompt and its client are known."""
    now = timezone.now()
    changes = {
        "calls": F("calls") + 1,
        "input_tokens": F("input_tokens") + usage.prompt_tokens,
        "output_tokens": F("output_tokens") + usage.output_tokens,
        "cost_usd": F("cost_usd") + charged,
        "last_seen_at": now,
        "last_model": model[:100],
        # Written again only once purged: an unchanged text is not rewritten on every call.
        "text_redacted": Case(
            When(text_redacted="", then=Value(discovery.text_redacted)),
            default=F("text_redacted"),
            output_field=TextField(),
        ),
        "text_expires_at": now + timedelta(days=settings.TOLLGATE_BODY_RETENTION_DAYS),
        **({"personal_data": True} if discovery.personal_data else {}),
    }
    rows = DiscoveredPrompt.objects.filter(environment=environment, system_hash=discovery.system_hash)
    if not _counted(rows, changes):
        try:
            with transaction.atomic():
                DiscoveredPrompt.objects.create(
                    environment=environment,
                    system_hash=discovery.system_hash,
                    characters=len(discovery.text_redacted),
                    first_seen_at=now,
                    calls=0,
                )
        except IntegrityError:
            pass  # another call inventoried it first
        _counted(rows, changes)
    if client is None:
        return
    link = (environment, discovery.system_hash, client.pk)
    if link in _linked:
        return
    prompt_id = rows.values_list("pk", flat=True).get()
    DiscoveredPrompt.clients.through.objects.bulk_create(
        [DiscoveredPrompt.clients.through(discoveredprompt_id=prompt_id, apiclient_id=client.pk)],
        ignore_conflicts=True,
    )
    transaction.on_commit(lambda: _link_known(link))  # a link rolled back is written again by the next call


def _counted(rows: QuerySet[DiscoveredPrompt], changes: dict[str, Any]) -> int:
    """Apply `changes` to the prompt's row. On PostgreSQL, outside a transaction of the caller's, the UPDATE
    is its own transaction and commits without waiting for its WAL flush (set in the statement itself: one
    round trip): every call of a prompt updates the same row, and waiting for the flush with its lock held
    queues them. The inventory is a view of the calls, not their record (the ledger, flushed by the
    settlement, is): a crash of PostgreSQL itself may lose its last few counts."""
    if connection.vendor == "postgresql" and not connection.in_atomic_block:
        asynchronous = RawSQL("set_config('synchronous_commit', 'off', true)", [], output_field=CharField())
        rows = rows.alias(commit=asynchronous).filter(commit="off")
    return rows.update(**changes)


def _link_known(link: tuple[str, str, int]) -> None:
    with _linked_lock:
        _linked.add(link)


def discovered_texts_purge(now: datetime) -> int:
    """Blank the redacted text of prompts not seen for TOLLGATE_BODY_RETENTION_DAYS (the counts stay)."""
    return (
        DiscoveredPrompt.objects.filter(text_expires_at__lte=now)
        .exclude(text_redacted="")
        .update(text_redacted="", text_expires_at=None)
    )


def _draft_content(discovered: DiscoveredPrompt) -> dict[str, Any]:
    """A registered prompt's draft: the discovered text as its system prompt, the caller's message as its
    one variable, the model of the latest call, a new version's defaults for the rest. Its author edits it
    before submitting it."""
    return {
        "system_prompt": discovered.text_redacted,
        "user_template": "{{ message }}",
        "variables": [{"name": "message", "type": "string", "required": True}],
        "model": discovered.last_model,
        "max_tokens": PromptVersion._meta.get_field("max_tokens").get_default(),
        "stop_sequences": [],
        "cache_ttl": CacheTTL.FIVE_MINUTES,
        "routing": {},
        "output_checks": {},
        "redaction": {},
    }


def _refusal(errors: dict[str, list[str]]) -> DomainError:
    problems = "; ".join(f"{field}: {', '.join(messages)}" for field, messages in errors.items())
    return DomainError(f"Its text cannot become a version as it stands ({problems}).", extra={"errors": errors})


@transaction.atomic
def discovered_prompt_register(*, actor: User, discovered: DiscoveredPrompt, slug: str, name: str) -> PromptVersion:
    """Turn an inventoried prompt into a governed one: a new prompt, owned by `actor`, with a draft version
    holding the redacted text (its author then edits and submits it, and a second person approves it, as
    for any version)."""
    require_permission(actor, "prompts.add_prompt", "register discovered prompts")
    require_permission(actor, "prompts.add_promptversion", "register discovered prompts")
    discovered = DiscoveredPrompt.objects.select_for_update().get(pk=discovered.pk)
    if discovered.registered_version_id is not None:
        raise DomainError("This prompt is registered already.")
    if discovered.text_purged:
        raise DomainError("Its text is no longer kept (past the body retention); it cannot be registered.")
    if not discovered.text_redacted:
        raise DomainError("It was sent without a system prompt; there is nothing to register.")
    slug, name = slug.strip(), name.strip()
    if not slug:
        raise DomainError("Give the new prompt a slug.")
    slug_field = Prompt._meta.get_field("slug")
    try:
        validate_slug(slug)
    except ValidationError:
        raise DomainError("A slug holds only letters, digits, hyphens and underscores.") from None
    if len(slug) > slug_field.max_length:  # type: ignore[operator]
        raise DomainError(f"A slug is at most {slug_field.max_length} characters.")
    if Prompt.objects.filter(slug=slug).exists():
        raise DomainError(f"A prompt '{slug}' exists already.")
    name = name[: Prompt._meta.get_field("name").max_length] or slug
    clients = ", ".join(sorted(client.name for client in discovered.clients.all())) or "no API client"
    prompt = prompt_create(
        actor=actor,
        slug=slug,
        name=name,
        purpose=f"Registered from prompt discovery: the system prompt {discovered.short_hash} sent by free-form "
        f"calls in {discovered.environment} ({clients}).",
        owner=actor,
        data_categories=[DataCategory.PERSONAL] if discovered.personal_data else [],
    )
    try:
        version = prompt_version_create(
            actor=actor,
            prompt=prompt,
            content=_draft_content(discovered),
            change_summary=f"Registered from the discovered prompt {discovered.short_hash} ({discovered.environment}).",
        )
    except InvalidVersion as exc:
        raise _refusal(exc.errors) from None
    DiscoveredPrompt.objects.filter(pk=discovered.pk).update(registered_version=version)
    audit_event_record(
        action="discovered_prompt.register",
        actor=actor,
        target=discovered,
        changes={
            "system_hash": discovered.system_hash,
            "environment": discovered.environment,
            "prompt": slug,
            "version": version.number,
        },
        reason="Registered from prompt discovery",
    )
    return version
