"""The documentation names files of the repository (`audit/roles.py`, `tests/usage/test_spend.py`): each
must exist, so that a module moved or renamed without its documentation fails here rather than misleading
a reader. `make docs` checks the links between pages; this checks the paths written as code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
PAGES = sorted([*(ROOT / "docs").glob("*.md"), ROOT / "README.md", ROOT / "bench" / "README.md"])
# A path written as code: at least one directory, a file name with a known suffix.
PATH = re.compile(r"`((?:[A-Za-z0-9_.-]+/)+[A-Za-z0-9_.-]+\.(?:py|md|html|toml|yml|sh))`")


def test_pages_are_found() -> None:
    assert (ROOT / "docs" / "contract.md") in PAGES
    assert all(page.is_file() for page in PAGES)


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_named_files_exist(page: Path) -> None:
    missing = sorted({path for path in PATH.findall(page.read_text()) if not (ROOT / path).is_file()})
    assert not missing, f"{page.relative_to(ROOT)} names files that do not exist: {', '.join(missing)}"
