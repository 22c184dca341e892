"""The cost of a change, before approval: a version's system prompt counted in tokens at Anthropic against
the live version's, and what the difference costs a month at the live version's traffic.

Counting is an upstream call (`count_tokens`, free at Anthropic, one ledger row with endpoint `count`) on
the development environment's provider key, never production's, made once per version content: the first
time the review page of a version in review is opened, or when it is approved if nobody opened it. The
result is stored (`SystemPromptCount`), so opening the page again calls nobody. A count that fails (no
development key, an upstream error) is kept with its reason and tried again after RETRY_AFTER; meanwhile
the figure is computed from the character estimate (≈ 4 characters a token) and says so. Approval is not
held up by it: the figure informs the approver and the evidence, it is not a control.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from core.environments import Environment
from core.errors import DomainError, ModelNotPriced, VersionTampered
from evaluations.models import SystemPromptCount
from gateway.counting import tokens_count_recorded
from gateway.pipeline import ledger_base, message_params, provider_key_for
from prompts.models import PromptVersion
from prompts.selectors import live_reference, tokens_estimate
from usage.choices import Endpoint
from usage.models import Price
from usage.pricing import TokenUsage, cost
from usage.selectors import decimal_text, price_for, prompt_traffic

logger = logging.getLogger(__name__)

# Anthropic counts whole requests, which need a message: the same one-character user message is in every
# count, so the difference between two counts is the difference between the system prompts.
PROBE_MESSAGES = [{"role": "user", "content": "."}]
WINDOW = timedelta(days=30)  # the traffic a month is taken from: the last 30 days
RETRY_AFTER = timedelta(minutes=10)  # a failed (or abandoned) count is tried again after this long
RATIO_PLACES = Decimal("0.0001")
FEATURE = "cost-of-change"  # the count's ledger row, as dashboards group it
NOT_COUNTED = "not counted yet: a version is counted when its review page is opened while it is in review"


def system_prompt_count(version: PromptVersion, *, count: bool) -> SystemPromptCount | None:
    """The stored count of the version's content; with `count`, counted now if there is none yet (or the
    last attempt failed more than RETRY_AFTER ago). Concurrent callers count once: the one that creates
    the row (or moves its `attempted_at`) counts, the others get the row as it stands."""
    stored = SystemPromptCount.objects.filter(version=version, content_hash=version.content_hash).first()
    if not count or (stored is not None and (stored.tokens is not None or not _retryable(stored))):
        return stored
    now = timezone.now()
    if stored is None:
        try:
            with transaction.atomic():
                stored = SystemPromptCount.objects.create(
                    version=version, content_hash=version.content_hash, model=version.model, attempted_at=now
                )
        except IntegrityError:  # another request is counting it
            return SystemPromptCount.objects.get(version=version, content_hash=version.content_hash)
    else:
        claimed = SystemPromptCount.objects.filter(pk=stored.pk, attempted_at=stored.attempted_at).update(
            attempted_at=now, model=version.model
        )
        if not claimed:
            stored.refresh_from_db()
            return stored
        stored.attempted_at = now
    _count(stored, version)
    return stored


def _retryable(stored: SystemPromptCount) -> bool:
    return timezone.now() - stored.attempted_at >= RETRY_AFTER


def _count(stored: SystemPromptCount, version: PromptVersion) -> None:
    if version.compute_hash() != stored.content_hash:
        # Edited in the database behind the registry's back: its count would be filed under the hash of
        # content it is not (and shown, and recorded at approval, as that content's). Not sent either.
        tampered = VersionTampered(f"{version} does not match its recorded content hash.")
        _failed(stored, version, tampered, request_id="")
        return
    try:
        key = provider_key_for(Environment.DEVELOPMENT)
    except DomainError as exc:  # no development key (or one outside the allowed upstreams): nothing was sent
        _failed(stored, version, exc, request_id="")
        return
    request_id = f"cost-{version.pk}-{secrets.token_hex(4)}"
    params = message_params(version, model=version.model, system=version.system_prompt, messages=PROBE_MESSAGES)
    record: dict[str, Any] = {
        **ledger_base(
            client=None,
            version=version,
            environment=Environment.DEVELOPMENT,
            endpoint=Endpoint.COUNT_TOKENS,
            request_id=request_id,
            key=key,
        ),
        "requested_model": version.model,
        "model": version.model,
        "feature": FEATURE,
    }
    try:
        tokens = tokens_count_recorded(key=key, params=params, record=record, caller_wrote_body=False)
    except DomainError as exc:  # recorded in the ledger with its outcome
        _failed(stored, version, exc, request_id=request_id)
        return
    stored.tokens, stored.error, stored.request_id, stored.counted_at = tokens, "", request_id, timezone.now()
    stored.save(update_fields=["tokens", "error", "request_id", "counted_at"])


def _failed(stored: SystemPromptCount, version: PromptVersion, exc: DomainError, *, request_id: str) -> None:
    logger.warning("The system prompt of %s could not be counted: %s", version, exc.detail)
    stored.error, stored.request_id = exc.detail[:300], request_id
    stored.save(update_fields=["error", "request_id"])


def cache_hit_ratio(*, cache_read_tokens: int, cache_write_tokens: int) -> Decimal:
    """The share of cached prompt tokens read from the cache rather than written to it, to 4 places (0 when
    nothing was cached: caching off, or prefixes too short)."""
    cached = cache_read_tokens + cache_write_tokens
    if cached <= 0:
        return Decimal(0)
    return (Decimal(cache_read_tokens) / Decimal(cached)).quantize(RATIO_PLACES, rounding=ROUND_HALF_EVEN)


def monthly_cost_difference(*, price: Price, token_delta: int, calls: int, cache_hit_ratio: Decimal) -> Decimal:
    """What `token_delta` more (or, negative, fewer) system-prompt tokens cost over `calls` requests:

        difference = sign(Δ) × calls × ( h × cost(|Δ| cache-read tokens) + (1 − h) × cost(|Δ| input tokens) )

    where Δ is the new count minus the live one, h the cache-hit ratio (cache reads ÷ (reads + writes)) of
    the live traffic, and cost() the price book's own arithmetic (`usage.pricing.cost`) at `price`. The
    cached share of the system prompt is priced at the cache-read rate and the rest at the input rate; the
    premium of cache writes over input, output tokens and batch discounts are left out: a system prompt's
    length changes none of them in a way the roll-ups could tell. Exact (Decimal, not rounded); zero when
    nothing changed or nothing ran, and of the sign of Δ otherwise.
    """
    if token_delta == 0 or calls <= 0:
        return Decimal(0)
    tokens = abs(token_delta)
    uncached = cost(price, TokenUsage(input_tokens=tokens))
    cached = cost(price, TokenUsage(cache_read_tokens=tokens))
    amount = calls * (cache_hit_ratio * cached + (1 - cache_hit_ratio) * uncached)
    return amount if token_delta > 0 else -amount


@dataclass(frozen=True)
class CostOfChange:
    """The cost of the change a version makes against the live version, as the review page shows it and the
    approval records it. `counted` says whether the token counts are Anthropic's; when not, they are
    character estimates and `failure` says why."""

    model: str
    new_tokens: int
    counted: bool
    failure: str
    counted_at: datetime | None
    live_environment: str | None
    live_version: int | None
    live_tokens: int | None
    calls: int
    cache_hit_ratio: Decimal
    price: Price | None
    monthly_difference_usd: Decimal | None

    @property
    def token_delta(self) -> int | None:
        return None if self.live_tokens is None else self.new_tokens - self.live_tokens

    def record(self) -> dict[str, Any]:
        """The figure as the approval's audit event keeps it (JSON: money and ratio as exact strings). Token
        counts are named `*_count`: the audit trail masks any field named like `token`."""
        return {
            "counted_by": "anthropic" if self.counted else "estimate",
            "count_failure": self.failure,
            "counted_at": self.counted_at.isoformat() if self.counted_at else None,
            "model": self.model,
            "live_environment": self.live_environment,
            "live_version": self.live_version,
            "live_count": self.live_tokens,
            "new_count": self.new_tokens,
            "count_delta": self.token_delta,
            "monthly_volume": self.calls,
            "cache_hit_ratio": str(self.cache_hit_ratio),
            "monthly_cost_difference_usd": (
                decimal_text(self.monthly_difference_usd) if self.monthly_difference_usd is not None else None
            ),
            "price_effective_from": self.price.effective_from.isoformat() if self.price else None,
        }


def cost_of_change(version: PromptVersion, *, count: bool) -> CostOfChange:
    """The version's system prompt against the live version's (production's, else staging's, else
    development's: the one its diff is against), and the monthly difference at the last 30 days' calls and
    cache-hit ratio of the prompt in that environment, at the price in force now for the version's model."""
    live = live_reference(version)
    live_environment, live_version = live if live else (None, None)
    new = system_prompt_count(version, count=count)
    # The live version is counted only once the new one is: a count that failed would fail again.
    live_count = system_prompt_count(live_version, count=count) if live_version and _tokens(new) is not None else None
    new_tokens, live_tokens = _tokens(new), _tokens(live_count)
    counted = new_tokens is not None and (live_version is None or live_tokens is not None)
    if new_tokens is None or not counted:
        new_tokens = tokens_estimate(version.system_prompt)
        live_tokens = tokens_estimate(live_version.system_prompt) if live_version is not None else None
    failure = "" if counted else (_failure(new) or _failure(live_count) or NOT_COUNTED)
    try:
        price: Price | None = price_for(version.model)
    except ModelNotPriced:
        price = None
    calls, ratio, monthly = 0, Decimal(0), None
    if live_environment is not None and live_tokens is not None:
        now = timezone.now()
        traffic = prompt_traffic(
            prompt_slug=version.prompt.slug, environment=live_environment, start=now - WINDOW, end=now
        )
        calls = traffic.calls
        ratio = cache_hit_ratio(
            cache_read_tokens=traffic.cache_read_tokens, cache_write_tokens=traffic.cache_write_tokens
        )
        if price is not None:
            monthly = monthly_cost_difference(
                price=price, token_delta=new_tokens - live_tokens, calls=calls, cache_hit_ratio=ratio
            )
    return CostOfChange(
        model=version.model,
        new_tokens=new_tokens,
        counted=counted,
        failure=failure,
        counted_at=new.counted_at if counted and new is not None else None,
        live_environment=live_environment,
        live_version=live_version.number if live_version is not None else None,
        live_tokens=live_tokens,
        calls=calls,
        cache_hit_ratio=ratio,
        price=price,
        monthly_difference_usd=monthly,
    )


def _tokens(stored: SystemPromptCount | None) -> int | None:
    return stored.tokens if stored is not None else None


def _failure(stored: SystemPromptCount | None) -> str:
    if stored is None:
        return ""
    if stored.tokens is None and not stored.error:
        return "being counted at Anthropic"
    return f"counting at Anthropic failed: {stored.error}" if stored.error else ""


class VersionCosts:
    """What the prompt registry asks of the cost of a change (prompts.hooks), registered in
    EvaluationsConfig.ready."""

    def of_change(self, version: PromptVersion, *, count: bool) -> CostOfChange:
        return cost_of_change(version, count=count)
