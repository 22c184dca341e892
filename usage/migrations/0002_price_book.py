"""Seeds the price book with Anthropic's published prices (usage/price_book.py)."""

from typing import Any

from django.db import migrations

from usage.price_book import price_book_seed


def seed(apps: Any, schema_editor: Any) -> None:
    price_book_seed(apps=apps, using=schema_editor.connection.alias)


class Migration(migrations.Migration):
    dependencies = [("usage", "0001_initial")]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
