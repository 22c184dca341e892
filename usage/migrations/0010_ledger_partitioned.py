"""On PostgreSQL, the usage ledger becomes a table partitioned by month of `created_at` (UTC), its rows moved
into it; SQLite keeps a plain table. What is kept and what changes (docs/capacity.md):

- The primary key of a partitioned table must include the partition key: it is (id, created_at). `id` stays
  the model's key and keeps its sequence (and its next value).
- `call_id` cannot be unique across partitions by an index. A trigger keeps it unique over the whole ledger:
  each insert of a call id takes a transaction-scoped advisory lock on it, then looks for the id in every
  partition (one index probe each), and refuses a second row with a unique violation, as the index did.
- The append-only trigger is declared on the parent: PostgreSQL clones it onto every partition, present
  and future. So are the indexes.
- `usage_ledger_partition_create(month)` creates one month's partition. It runs with its owner's rights
  (SECURITY DEFINER, the role that migrates), so beat, running as the application's role that owns
  nothing, can create partitions ahead without being able to detach or drop one.
- Rows dated beyond the months created land in the default partition (usage.partitions warns of them).
"""

from __future__ import annotations

from typing import Any

from django.db import migrations

TABLE = "usage_usagerecord"
OLD = "usage_usagerecord_unpartitioned"
SEQUENCE = "usage_usagerecord_id_seq"

FUNCTIONS = [
    """
    CREATE OR REPLACE FUNCTION usage_ledger_partition_create(month date) RETURNS text
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    DECLARE
        first date := date_trunc('month', month)::date;
        name text := 'usage_usagerecord_p' || to_char(first, 'YYYY_MM');
    BEGIN
        IF EXISTS (SELECT FROM pg_class WHERE relname = name AND relnamespace = 'public'::regnamespace) THEN
            RETURN name;
        END IF;
        EXECUTE format(
            'CREATE TABLE public.%I PARTITION OF public.usage_usagerecord FOR VALUES FROM (%L) TO (%L)',
            name, first::text || ' 00:00:00+00', (first + interval '1 month')::date::text || ' 00:00:00+00'
        );
        RETURN name;
    EXCEPTION
        WHEN duplicate_table THEN RETURN name;  -- created meanwhile by a concurrent caller
        WHEN check_violation THEN RETURN NULL;  -- the default partition holds rows of the month
    END
    $$
    """,
    """
    CREATE OR REPLACE FUNCTION usage_ledger_call_once() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF NEW.call_id IS NOT NULL THEN
            -- Serialises the inserts of one call id; in READ COMMITTED the lookup below then sees the row
            -- of whoever held the lock before (it has committed, or rolled back).
            PERFORM pg_advisory_xact_lock(hashtextextended('usage_usagerecord.call_id ' || NEW.call_id, 0));
            IF EXISTS (SELECT FROM public.usage_usagerecord WHERE call_id = NEW.call_id) THEN
                RAISE EXCEPTION 'duplicate key value violates unique constraint "usage_usagerecord_call_id_once"'
                    USING ERRCODE = 'unique_violation',
                          DETAIL = format('Key (call_id)=(%s) already exists.', NEW.call_id);
            END IF;
        END IF;
        RETURN NEW;
    END
    $$
    """,
]


def _executor(schema_editor: Any) -> Any:
    """`schema_editor.execute` with no parameters unless given: the functions' bodies hold `%` of their own."""

    def execute(sql: str, params: list[Any] | None = None) -> None:
        schema_editor.execute(sql, params=params)

    return execute


def _rows(cursor: Any, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    cursor.execute(sql, params)
    return list(cursor.fetchall())


def _shape(cursor: Any, table: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]], list[str]]:
    """The table's indexes not behind a constraint (name, definition), its foreign keys (name, definition),
    and the names of its primary-key and unique constraints."""
    indexes = _rows(
        cursor,
        """
        SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
        WHERE x.indrelid = %s::regclass
          AND NOT EXISTS (SELECT FROM pg_constraint c WHERE c.conindid = i.oid AND c.conrelid = x.indrelid)
        ORDER BY i.relname
        """,
        [table],
    )
    foreign = _rows(
        cursor,
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'f'"
        " ORDER BY conname",
        [table],
    )
    keys = [
        name
        for (name,) in _rows(
            cursor,
            "SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass AND contype IN ('p', 'u')",
            [table],
        )
    ]
    return indexes, foreign, keys


def _set_aside(cursor: Any, schema_editor: Any) -> tuple[list[tuple[str, str]], list[tuple[str, str]], int, bool]:
    """Rename the ledger out of the way with its indexes, keys and triggers dropped (their names are free
    for the new table) and its id sequence detached; returns what the new table recreates."""
    referencing = _rows(
        cursor, "SELECT conname FROM pg_constraint WHERE confrelid = %s::regclass AND contype = 'f'", [TABLE]
    )
    if referencing:
        raise RuntimeError(f"foreign keys reference the ledger ({referencing}): a ledger row is referenced by value")
    indexes, foreign, keys = _shape(cursor, TABLE)
    cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [TABLE])
    (sequence,) = cursor.fetchone()
    cursor.execute(f"SELECT last_value, is_called FROM {sequence}")
    last_value, is_called = cursor.fetchone()
    execute = _executor(schema_editor)
    execute(f"ALTER TABLE {TABLE} RENAME TO {OLD}")
    execute(f"DROP TRIGGER IF EXISTS usage_usagerecord_append_only ON {OLD}")
    execute(f"DROP TRIGGER IF EXISTS usage_usagerecord_call_once ON {OLD}")
    for name, _ in foreign:
        execute(f'ALTER TABLE {OLD} DROP CONSTRAINT "{name}"')
    for name in keys:
        execute(f'ALTER TABLE {OLD} DROP CONSTRAINT "{name}"')
    for name, _ in indexes:
        execute(f'DROP INDEX "{name}"')
    # Identity (a plain table's) or a sequence owned by the column (a partitioned one's): either way its
    # sequence goes with it, and the new table's continues from its value.
    cursor.execute(
        "SELECT attidentity FROM pg_attribute WHERE attrelid = %s::regclass AND attname = 'id'",
        [OLD],
    )
    if cursor.fetchone()[0]:
        execute(f"ALTER TABLE {OLD} ALTER COLUMN id DROP IDENTITY")
    else:
        execute(f"ALTER TABLE {OLD} ALTER COLUMN id DROP DEFAULT")
        execute(f"DROP SEQUENCE IF EXISTS {SEQUENCE}")
    return indexes, foreign, last_value, is_called


def _finish(schema_editor: Any, indexes: list[tuple[str, str]], foreign: list[tuple[str, str]]) -> None:
    execute = _executor(schema_editor)
    for _, definition in indexes:
        execute(definition.replace(" ON ONLY ", " ON "))
    for name, definition in foreign:
        execute(f'ALTER TABLE {TABLE} ADD CONSTRAINT "{name}" {definition}')
    execute(f"DROP TABLE {OLD}")
    execute(
        f"CREATE TRIGGER usage_usagerecord_append_only BEFORE UPDATE OR DELETE ON {TABLE} "
        "FOR EACH ROW EXECUTE FUNCTION usage_refuse_change()"
    )


def partition(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    execute = _executor(schema_editor)
    for function in FUNCTIONS:
        execute(function)
    with schema_editor.connection.cursor() as cursor:
        indexes, foreign, last_value, is_called = _set_aside(cursor, schema_editor)
        execute(
            f"CREATE TABLE {TABLE} (LIKE {OLD} INCLUDING DEFAULTS INCLUDING CONSTRAINTS) PARTITION BY RANGE (created_at)"
        )
        execute(f"CREATE SEQUENCE {SEQUENCE} OWNED BY {TABLE}.id")
        execute(f"SELECT setval('{SEQUENCE}', %s, %s)", [last_value, is_called])
        execute(f"ALTER TABLE {TABLE} ALTER COLUMN id SET DEFAULT nextval('{SEQUENCE}')")
        execute(f"ALTER TABLE {TABLE} ADD CONSTRAINT usage_usagerecord_pkey PRIMARY KEY (id, created_at)")
        # A month for every month holding rows, the current one and the next three; the rest go to default.
        months = _rows(
            cursor,
            f"""
            SELECT DISTINCT month FROM (
                SELECT date_trunc('month', created_at AT TIME ZONE 'UTC')::date AS month FROM {OLD}
                UNION SELECT (date_trunc('month', now() AT TIME ZONE 'UTC') + n * interval '1 month')::date
                FROM generate_series(0, 3) AS n
            ) AS months ORDER BY month
            """,
        )
        for (month,) in months:
            execute("SELECT usage_ledger_partition_create(%s)", [month])
        execute(f"CREATE TABLE usage_usagerecord_default PARTITION OF {TABLE} DEFAULT")
        execute(f"INSERT INTO {TABLE} SELECT * FROM {OLD}")
        # Unique per partition only, so not a constraint: the trigger below keeps call ids unique.
        indexes = [
            *indexes,
            ("usage_usagerecord_call_id_idx", f"CREATE INDEX usage_usagerecord_call_id_idx ON {TABLE} (call_id)"),
        ]
        _finish(schema_editor, indexes, foreign)
    execute(
        f"CREATE TRIGGER usage_usagerecord_call_once BEFORE INSERT ON {TABLE} "
        "FOR EACH ROW EXECUTE FUNCTION usage_ledger_call_once()"
    )


def unpartition(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    execute = _executor(schema_editor)
    with schema_editor.connection.cursor() as cursor:
        indexes, foreign, last_value, is_called = _set_aside(cursor, schema_editor)
        execute(f"CREATE TABLE {TABLE} (LIKE {OLD} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
        execute(f"INSERT INTO {TABLE} SELECT * FROM {OLD}")
        execute(f"ALTER TABLE {TABLE} ALTER COLUMN id ADD GENERATED BY DEFAULT AS IDENTITY")
        execute(f"SELECT setval(pg_get_serial_sequence('{TABLE}', 'id'), %s, %s)", [last_value, is_called])
        execute(f"ALTER TABLE {TABLE} ADD CONSTRAINT usage_usagerecord_pkey PRIMARY KEY (id)")
        execute(f"ALTER TABLE {TABLE} ADD CONSTRAINT usage_usagerecord_call_id_key UNIQUE (call_id)")
        indexes = [index for index in indexes if index[0] != "usage_usagerecord_call_id_idx"]
        _finish(schema_editor, indexes, foreign)
    # DROP TABLE took the partitions with it.
    execute("DROP FUNCTION IF EXISTS usage_ledger_call_once()")
    execute("DROP FUNCTION IF EXISTS usage_ledger_partition_create(date)")


class Migration(migrations.Migration):
    dependencies = [("usage", "0009_playground")]

    operations = [migrations.RunPython(partition, unpartition, elidable=False)]
