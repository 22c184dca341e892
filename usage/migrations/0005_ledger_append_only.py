"""On PostgreSQL, the usage ledger refuses UPDATE and DELETE at the database level (as the audit trail
does: audit 0005). TRUNCATE fires no row trigger; the application's role is simply not granted it."""

from __future__ import annotations

from typing import Any

from django.db import migrations

FORWARD = [
    """
    CREATE OR REPLACE FUNCTION usage_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'table % is append-only: % refused', TG_TABLE_NAME, TG_OP
            USING ERRCODE = 'insufficient_privilege';
    END
    $$
    """,
    "CREATE TRIGGER usage_usagerecord_append_only BEFORE UPDATE OR DELETE ON usage_usagerecord "
    "FOR EACH ROW EXECUTE FUNCTION usage_refuse_change()",
]
BACKWARD = [
    "DROP TRIGGER IF EXISTS usage_usagerecord_append_only ON usage_usagerecord",
    "DROP FUNCTION IF EXISTS usage_refuse_change()",
]


def _run(statements: list[str]) -> Any:
    def run(apps: Any, schema_editor: Any) -> None:
        if schema_editor.connection.vendor != "postgresql":
            return
        for statement in statements:
            schema_editor.execute(statement, params=None)

    return run


class Migration(migrations.Migration):
    dependencies = [("usage", "0004_evaluation_endpoint_and_quality_drift")]

    operations = [migrations.RunPython(_run(FORWARD), _run(BACKWARD), elidable=False)]
