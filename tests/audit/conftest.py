from __future__ import annotations

from pathlib import Path

import pytest
from django.db import connection


@pytest.fixture(autouse=True)
def anchor_dir(tmp_path: Path, settings) -> Path:
    """Each test's checkpoint anchors in a directory of its own (the database is rolled back per test)."""
    directory = tmp_path / "anchors"
    settings.TOLLGATE_AUDIT_ANCHOR_DIR = directory
    return directory


@pytest.fixture
def empty_trail(db: None) -> None:
    """A trail with no event before the test's own (rolled back with the test). A transactional test that
    ran before leaves the role sync's events behind (flush re-runs post_migrate), stamped with the real
    time, which would be later than the times these tests travel to."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL session_replication_role = replica")
        for table in ("audit_auditevent", "audit_auditcheckpoint", "audit_auditchainhead"):
            cursor.execute(f"DELETE FROM {table}")  # noqa: S608  (fixed names)
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL session_replication_role = origin")
