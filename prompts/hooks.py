"""What a higher layer adds to the registry's workflow, registered from its AppConfig.ready.

The registry sits below evaluations, so it never imports them: the evaluations app registers here how a
version is evaluated, and the registry asks through this one object — for the approval gate
(TOLLGATE_APPROVAL_REQUIRES_EVALUATION), the version's review page ("Run evaluation", the latest result),
the prompt's page (each version's latest result) and the change-management evidence (the last evaluation
before approval). It registers a second object, for the cost of a change: the version's system prompt
counted in tokens at Anthropic against the live version's, and what the difference costs a month (the
review page, and the approval's audit event).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from django.contrib.auth.models import User
from django.core.exceptions import ImproperlyConfigured

from prompts.models import PromptVersion


class VersionEvaluations(Protocol):
    evaluable: frozenset[str]  # the version statuses an evaluation may start from
    permission: str  # the permission that starts one

    def start(self, *, actor: User, version: PromptVersion) -> Any: ...

    def latest(self, version: PromptVersion) -> Any | None:
        """The latest evaluation of the version, finished or not (for its page)."""

    def latest_of(self, versions: Sequence[PromptVersion]) -> dict[int, Any]:
        """Version pk → its latest evaluation, for those of `versions` that have one, in one query (for
        the prompt's page)."""

    def approval_refusal(self, version: PromptVersion) -> str | None:
        """Why the version may not be approved yet for want of a passing evaluation, or None."""

    def before_approval(self, version: PromptVersion) -> Any | None:
        """The last finished evaluation of the version's content before it was approved."""


_registered: list[VersionEvaluations] = []


def evaluations_register(evaluations: VersionEvaluations) -> None:
    _registered[:] = [evaluations]


def evaluations() -> VersionEvaluations:
    if not _registered:  # the evaluations app is part of every installation (INSTALLED_APPS)
        raise ImproperlyConfigured("No app registered how prompt versions are evaluated (prompts.hooks).")
    return _registered[0]


class VersionCosts(Protocol):
    def of_change(self, version: PromptVersion, *, count: bool) -> Any:
        """The cost of the change `version` makes against the live version: its `record()` is what the
        approval's audit event keeps. With `count`, a system prompt not counted yet is counted now (an
        upstream call, once per content); without, only stored counts are used. Never raises for a count
        that failed: the result says why, and the character estimate stands in."""


_costs: list[VersionCosts] = []


def costs_register(costs: VersionCosts) -> None:
    _costs[:] = [costs]


def costs() -> VersionCosts:
    if not _costs:
        raise ImproperlyConfigured("No app registered how the cost of a change is counted (prompts.hooks).")
    return _costs[0]
