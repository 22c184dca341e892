"""Series of spend against each cap for GET /metrics: the caps are keys' and API clients', the counters usage's."""

from __future__ import annotations

from django.db.models import Q
from django.utils import timezone

from core.metrics import Family
from keys.models import ApiClient, KeyStatus, ProviderKey
from usage.choices import CapScope, Period
from usage.models import SpendCounter
from usage.periods import period_start


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
