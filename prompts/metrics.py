"""Series of spend against caps, of the queue and of evaluations for GET /metrics (config.metrics). Here
because it needs keys (the caps), usage (the counters) and the prompt registry."""

from __future__ import annotations

from django.db.models import Q
from django.utils import timezone

from config.environments import Environment
from config.metrics import Family
from keys.models import ApiClient, KeyStatus, ProviderKey
from prompts.choices import EvaluationStatus
from prompts.models import EvaluationRun, Release
from prompts.selectors import queue_state
from usage.choices import CapScope, Period
from usage.models import SpendCounter
from usage.services import period_start


def spend_families() -> list[Family]:
    spent = Family("tollgate_spend_usd", "Spend this period against a cap (settled), USD.", "gauge")
    reserved = Family("tollgate_spend_reserved_usd", "Spend held by calls in flight, USD.", "gauge")
    caps = Family("tollgate_spend_cap_usd", "The cap, USD.", "gauge")
    now = timezone.now()
    capped: list[tuple[str, int, str, str, object]] = []
    for key in ProviderKey.objects.filter(status=KeyStatus.ACTIVE):
        capped.append((CapScope.PROVIDER_KEY, key.cap_id, key.label, Period.MONTH, key.monthly_cap_usd))
        if key.daily_cap_usd is not None:
            capped.append((CapScope.PROVIDER_KEY, key.cap_id, key.label, Period.DAY, key.daily_cap_usd))
    for client in ApiClient.objects.filter(is_active=True, monthly_cap_usd__isnull=False):
        capped.append((CapScope.API_CLIENT, client.pk, client.name, Period.MONTH, client.monthly_cap_usd))
    starts = {period: period_start(period, now) for period in Period.values}
    counters = {
        (counter.scope, counter.scope_id, counter.period): counter
        for counter in SpendCounter.objects.filter(
            Q(period=Period.MONTH, period_start=starts[Period.MONTH])
            | Q(period=Period.DAY, period_start=starts[Period.DAY])
        )
    }
    for scope, scope_id, label, period, limit in capped:
        counter = counters.get((scope, scope_id, period))
        labels = {"scope": scope, "name": label, "period": period}
        spent.add(labels, counter.spent_usd if counter else 0)
        reserved.add(labels, counter.reserved_usd if counter else 0)
        caps.add(labels, limit)
    return [spent, reserved, caps]


def queue_families() -> list[Family]:
    depth = Family("tollgate_queue_jobs", "Jobs queued or running.", "gauge")
    age = Family("tollgate_queue_oldest_seconds", "Age of the oldest queued job (0 when none).", "gauge")
    batches = Family("tollgate_open_batches", "Batches in progress.", "gauge")
    for row in queue_state():
        environment = row["environment"]
        depth.add({"environment": environment, "status": "queued"}, row["queued"])
        depth.add({"environment": environment, "status": "running"}, row["running"])
        age.add({"environment": environment}, row["oldest_queued_seconds"] or 0)
        batches.add({"environment": environment}, row["open_batches"])
    return [depth, age, batches]


def evaluation_families() -> list[Family]:
    rate = Family(
        "tollgate_evaluation_pass_rate",
        "Pass rate (0 to 1) of the latest finished evaluation of each version live in production.",
        "gauge",
    )
    live = Release.objects.filter(environment=Environment.PRODUCTION).select_related("prompt", "version")
    for release in live:
        latest = (
            EvaluationRun.objects.filter(
                version=release.version, status__in=[EvaluationStatus.PASSED, EvaluationStatus.FAILED]
            )
            .only("pass_rate")
            .first()
        )
        if latest is not None and latest.pass_rate is not None:
            rate.add({"prompt": release.prompt.slug, "version": str(release.version.number)}, latest.pass_rate)
    return [rate]
