"""Prompt discovery (docs/anthropic.md): every distinct system prompt seen on free-form calls of the
Anthropic-compatible endpoint, inventoried by the hash of its redacted text — first and last seen, which
clients send it, calls, tokens, cost, whether it carried personal data — so compliance staff see what
prompts run without reading anybody's code. The redacted text is kept for TOLLGATE_BODY_RETENTION_DAYS
after the prompt was last seen (`request_bodies_purge` blanks it then); the counts stay."""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.text import slugify

from audit.services import audit_event_record
from core.errors import DomainError
from gateway.models import DiscoveredPrompt
from keys.models import ApiClient
from prompts.models import Prompt, PromptVersion
from prompts.services import prompt_create, prompt_version_create
from usage.pricing import TokenUsage

# (environment, hash, client id) already linked in this process: the link is written once, then only counted.
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
    discovery: Discovery, *, client: ApiClient | None, environment: str, usage: TokenUsage, charged: Decimal
) -> None:
    """Count one upstream call of `discovery`'s prompt: one UPDATE once the prompt and its client are known."""
    now = timezone.now()
    changes = {
        "calls": F("calls") + 1,
        "input_tokens": F("input_tokens") + usage.prompt_tokens,
        "output_tokens": F("output_tokens") + usage.output_tokens,
        "cost_usd": F("cost_usd") + charged,
        "last_seen_at": now,
        "text_redacted": discovery.text_redacted,
        "text_expires_at": now + timedelta(days=settings.TOLLGATE_BODY_RETENTION_DAYS),
        **({"personal_data": True} if discovery.personal_data else {}),
    }
    rows = DiscoveredPrompt.objects.filter(environment=environment, system_hash=discovery.system_hash)
    if not rows.update(**changes):
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
        rows.update(**changes)
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
    with _linked_lock:
        _linked.add(link)


def discovered_texts_purge(now: timezone.datetime) -> int:
    """Blank the redacted text of prompts not seen for TOLLGATE_BODY_RETENTION_DAYS."""
    return (
        DiscoveredPrompt.objects.filter(text_expires_at__lte=now)
        .exclude(text_redacted="")
        .update(text_redacted="", text_expires_at=None)
    )


@transaction.atomic
def discovered_prompt_register(*, actor: User, discovered: DiscoveredPrompt, slug: str, name: str) -> PromptVersion:
    """Turn an inventoried prompt into a governed one: a new prompt with a draft version holding the
    redacted text (an author then edits, submits, and a second person approves as for any version)."""
    discovered = DiscoveredPrompt.objects.select_for_update().get(pk=discovered.pk)
    if discovered.registered_version_id is not None:
        raise DomainError("This prompt is registered already.")
    if not discovered.text_redacted:
        raise DomainError("Its text is no longer kept (past the body retention); it cannot be registered.")
    slug = slugify(slug)
    if not slug:
        raise DomainError("Give the new prompt a slug.")
    if Prompt.objects.filter(slug=slug).exists():
        raise DomainError(f"A prompt '{slug}' exists already.")
    prompt = prompt_create(actor=actor, slug=slug, name=name or slug, purpose="Registered from prompt discovery.")
    version = prompt_version_create(
        actor=actor,
        prompt=prompt,
        system_prompt=discovered.text_redacted,
        change_summary=f"Registered from the discovered prompt {discovered.system_hash[:12]} ({discovered.environment}).",
    )
    DiscoveredPrompt.objects.filter(pk=discovered.pk).update(registered_version=version)
    audit_event_record(
        action="discovered_prompt.register",
        actor=actor,
        target=version,
        changes={"system_hash": discovered.system_hash, "environment": discovered.environment, "slug": slug},
        reason="Registered from prompt discovery",
    )
    return version
