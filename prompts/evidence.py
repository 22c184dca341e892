"""Evidence types of the prompt registry: change management and data flows (audit.evidence)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.conf import settings

from audit.evidence import EvidenceType, Period, register
from audit.models import AuditEvent
from core.errors import UnreadableSetting
from prompts import hooks
from prompts.models import Prompt, PromptVersion, Release
from prompts.specs import redaction_of, routing_of

# The cost of the change as its approval recorded it (the approval's audit event, `cost_of_change`):
# column → the event's field.
COST_FIELDS = {
    "cost_counted_by": "counted_by",
    "cost_live_version": "live_version",
    "cost_live_tokens": "live_count",
    "cost_new_tokens": "new_count",
    "cost_token_delta": "count_delta",
    "cost_monthly_volume": "monthly_volume",
    "cost_cache_hit_ratio": "cache_hit_ratio",
    "cost_monthly_difference_usd": "monthly_cost_difference_usd",
    "cost_price_effective_from": "price_effective_from",
    "cost_counted_at": "counted_at",
}
COST_COLUMNS = tuple(COST_FIELDS)
CHANGE_COLUMNS = (
    "change_id",
    "object",
    "environment",
    "version_from",
    "version_to",
    "content_hash_before",
    "content_hash_after",
    "change_reason",
    "change_summary",
    "author",
    "submitted_at",
    "approver",
    "approved_at",
    "author_is_not_approver",
    "evaluation_before_approval",
    "evaluated_at",
    *COST_COLUMNS,
    "released_by",
    "released_at",
    "rollback_of",
    "audit_sequence",
    "audit_hash",
)


def _cost_at_approval(version: PromptVersion) -> dict[str, Any]:
    """The cost-of-change columns, from the version's approval event (empty before the figure was kept)."""
    approval = (
        AuditEvent.objects.filter(
            action="prompt_version.approve", object_type=PromptVersion._meta.label_lower, object_id=str(version.pk)
        )
        .order_by("-sequence")
        .first()
    )
    figure = (approval.changes.get("cost_of_change") if approval else None) or {}
    return {column: figure.get(field) for column, field in COST_FIELDS.items()}


def _change_rows(period: Period) -> Iterator[dict[str, Any]]:
    """One row per release or rollback in the period, from its audit event, with the version's review."""
    events = AuditEvent.objects.filter(
        action__in=["release.create", "release.rollback"], occurred_at__gte=period.start, occurred_at__lt=period.end
    ).order_by("sequence")
    for event in events.iterator(chunk_size=500):
        slug, environment = event.changes.get("prompt"), event.changes.get("environment")
        number_from, number_to = event.changes.get("version", [None, None])
        versions = {
            version.number: version
            for version in PromptVersion.objects.select_related("author", "reviewed_by").filter(
                prompt__slug=slug, number__in=[n for n in (number_from, number_to) if n is not None]
            )
        }
        before, after = versions.get(number_from), versions.get(number_to)
        evaluation = hooks.evaluations().before_approval(after) if after is not None else None
        yield {
            "change_id": f"CHG-{event.sequence}",
            "object": slug,
            "environment": environment,
            "version_from": number_from,
            "version_to": number_to,
            "content_hash_before": before.content_hash if before else "",
            "content_hash_after": after.content_hash if after else event.changes.get("content_hash", ""),
            "change_reason": event.reason,
            "change_summary": after.change_summary if after else "",
            "author": after.author.get_username() if after else "",
            "submitted_at": after.submitted_at if after else None,
            "approver": after.reviewed_by.get_username() if after and after.reviewed_by else "",
            "approved_at": after.reviewed_at if after else None,
            "author_is_not_approver": bool(after and after.reviewed_by_id and after.reviewed_by_id != after.author_id),
            "evaluation_before_approval": (
                f"{evaluation.status} {evaluation.cases_passed} of {evaluation.cases_total}" if evaluation else ""
            ),
            "evaluated_at": evaluation.finished_at if evaluation else None,
            **(_cost_at_approval(after) if after is not None else dict.fromkeys(COST_COLUMNS)),
            "released_by": event.actor_repr,
            "released_at": event.occurred_at,
            "rollback_of": number_from if event.action == "release.rollback" else None,
            "audit_sequence": event.sequence,
            "audit_hash": event.hash,
        }


DATA_FLOW_COLUMNS = (
    "prompt",
    "name",
    "owner",
    "team",
    "data_categories",
    "sensitive_variables",
    "redaction",
    "models",
    "environments",
    "body_retention_days",
    "subservice_organisation",
)
AUTOMATIC_REDACTION = "e-mail, phone, payment card, IBAN, US SSN, IP address"


def _data_flow_rows(period: Period) -> Iterator[dict[str, Any]]:
    """Per prompt, as it stands now: what data it handles, what is redacted, where it goes."""
    releases = Release.objects.select_related("version")
    for prompt in Prompt.objects.select_related("owner").order_by("slug").iterator(chunk_size=500):
        live = list(releases.filter(prompt=prompt).order_by("environment"))
        models: set[str] = set()
        sensitive: set[str] = set()
        custom: list[str] = []
        for release in live:
            version = release.version
            models.add(version.model)
            sensitive.update(variable["name"] for variable in version.variables if variable.get("sensitive"))
            try:
                models.update(routing_of(version).models())
                rules = redaction_of(version)
            except UnreadableSetting:
                # Saved before its spec was as strict: the pipeline refuses to run it, so nothing of it
                # leaves. The package says so rather than failing the whole export.
                custom.append(f"v{version.number}: a setting its spec refuses, runs refused")
                continue
            if rules.terms or rules.patterns:
                custom.append(f"v{version.number}: {len(rules.terms)} terms, {len(rules.patterns)} patterns")
        yield {
            "prompt": prompt.slug,
            "name": prompt.name,
            "owner": prompt.owner.get_username(),
            "team": prompt.team,
            "data_categories": prompt.data_categories,
            "sensitive_variables": sorted(sensitive),
            "redaction": "; ".join([f"automatic: {AUTOMATIC_REDACTION}", *custom]),
            "models": sorted(models),
            "environments": [f"{release.environment}: v{release.version.number}" for release in live],
            "body_retention_days": settings.TOLLGATE_BODY_RETENTION_DAYS,
            "subservice_organisation": "Anthropic, PBC (Claude API) — carved-out subservice organisation",
        }


def register_all() -> None:
    register(
        EvidenceType(
            name="change_management",
            title="Change management (prompt releases)",
            description="Every release and rollback of a prompt version in the period: what changed, who "
            "wrote, approved and released it, the last evaluation of its content finished before approval, "
            "the cost of the change as recorded with the approval (tokens counted against the live version, "
            "the monthly difference at the last 30 days' traffic), "
            "and the audit event that records it (CC8.1).",
            columns=CHANGE_COLUMNS,
            rows=_change_rows,
        )
    )
    register(
        EvidenceType(
            name="data_flow",
            title="Data flows",
            description="Per prompt, as of the export: data categories, redaction applied before data "
            "leaves, models, environments, retention of request bodies, and the subservice organisation.",
            columns=DATA_FLOW_COLUMNS,
            rows=_data_flow_rows,
        )
    )
