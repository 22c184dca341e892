"""After every migrate (and test flush): the seeded price book is present, and on PostgreSQL the ledger's
partitions for this month and the next ones exist."""

from __future__ import annotations

from typing import Any

from django.apps import apps as global_apps
from django.db import DEFAULT_DB_ALIAS
from django.db.models.signals import post_migrate
from django.dispatch import receiver

from usage.partitions import ledger_partitions_create
from usage.price_book import price_book_seed


@receiver(post_migrate, dispatch_uid="usage_price_book_seed")
def on_post_migrate(sender: Any, apps: Any = None, using: str = DEFAULT_DB_ALIAS, **kwargs: Any) -> None:
    if sender.name == "usage":
        price_book_seed(apps=apps or global_apps, using=using)
        if using == DEFAULT_DB_ALIAS:
            ledger_partitions_create()
