"""On PostgreSQL, the audit trail and its checkpoints refuse UPDATE and DELETE at the database level.

The application never changes or removes these rows (the models refuse too); the trigger stops
everything else that connects as the application's role. A role that owns the tables can still drop
the trigger: run the application as a role that owns nothing (docs/operations.md, Database roles).
TRUNCATE fires no row trigger; the application's role is simply not granted it.
"""

from __future__ import annotations

from typing import Any

from django.db import migrations

TABLES = ("audit_auditevent", "audit_auditcheckpoint")

FORWARD = [
    """
    CREATE OR REPLACE FUNCTION audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'table % is append-only: % refused', TG_TABLE_NAME, TG_OP
            USING ERRCODE = 'insufficient_privilege';
    END
    $$
    """,
    *(
        f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
        "FOR EACH ROW EXECUTE FUNCTION audit_refuse_change()"
        for table in TABLES
    ),
]
BACKWARD = [
    *(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}" for table in TABLES),
    "DROP FUNCTION IF EXISTS audit_refuse_change()",
]


def _run(statements: list[str]) -> Any:
    def run(apps: Any, schema_editor: Any) -> None:
        if schema_editor.connection.vendor != "postgresql":
            return  # SQLite has no roles to separate: the models' guards are what there is
        for statement in statements:
            schema_editor.execute(statement, params=None)

    return run


class Migration(migrations.Migration):
    dependencies = [("audit", "0004_export_permission")]

    operations = [migrations.RunPython(_run(FORWARD), _run(BACKWARD), elidable=False)]
