"""Errors of the usage app; each has a stable code (config.errors.DomainError)."""

from __future__ import annotations

from config.errors import DomainError

ADVERB = {"month": "monthly", "day": "daily"}


class ModelNotPriced(DomainError):
    code = "model_not_priced"
    title = "Model has no price"
    status = 400


class SpendCapExceeded(DomainError):
    """A reservation would push a cap over its limit. `cap` names which one; the remaining balance is
    not disclosed."""

    code = "spend_cap_exceeded"
    title = "Spend cap exceeded"
    status = 402

    def __init__(self, *, cap: str, label: str, period: str) -> None:
        super().__init__(
            f"This request could cost more than what is left of the {ADVERB[period]} {label} spend cap.",
            extra={"cap": cap, "period": period},
        )
