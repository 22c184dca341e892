from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def anchor_dir(tmp_path: Path, settings) -> Path:
    """Each test's checkpoint anchors in a directory of its own (the database is rolled back per test)."""
    directory = tmp_path / "anchors"
    settings.TOLLGATE_AUDIT_ANCHOR_DIR = directory
    return directory
