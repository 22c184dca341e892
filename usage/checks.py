"""System checks of the ledger that read the database (`manage.py check --database default`)."""

from __future__ import annotations

from typing import Any

from django.core.checks import CheckMessage, Tags, Warning, register

from usage.partitions import DEFAULT_PARTITION, ledger_default_rows


@register(Tags.database)
def ledger_default_partition_check(databases: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Rows in the ledger's default partition were dated in a month without a partition of its own: beat's
    `ledger-partitions` task has not been running. They stay in the ledger, but that month's partition can
    no longer be created until they are moved, and no archive can take them."""
    if not databases or "default" not in databases:
        return []
    rows = ledger_default_rows()
    if not rows:
        return []
    return [
        Warning(
            f"{DEFAULT_PARTITION} holds {rows if rows < 10_000 else 'over 10,000'} ledger row(s).",
            hint="Run beat (task usage.tasks.ledger_partitions_create), then move the rows as the owner: "
            "docs/capacity.md, Rows in the default partition.",
            id="usage.W001",
        )
    ]
