"""The documentation names files of the repository (`audit/roles.py`, `tests/usage/test_spend.py`): each
must exist, so that a module moved or renamed without its documentation fails here rather than misleading
a reader. `make docs` checks the links between pages; this checks the paths written as code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from core import errors

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


def _documented_codes() -> set[str]:
    """Every code in a `| status | code | when |` table of docs/api.md (the API's and the services')."""
    rows = re.findall(r"^\| \d{3} \| (.+?) \|", (ROOT / "docs" / "api.md").read_text(), re.MULTILINE)
    return {code for row in rows for code in re.findall(r"`([a-z_]+)`", row)}


def test_every_error_code_in_the_one_table_of_codes_is_documented() -> None:
    """core.errors is the one table of codes in the code; docs/api.md the public one. They must agree in
    this direction: every code a caller can receive is documented."""
    codes = {
        value.code
        for value in vars(errors).values()
        if isinstance(value, type) and issubclass(value, errors.DomainError)
    }
    undocumented = codes - _documented_codes()
    assert not undocumented, f"error codes missing from docs/api.md: {sorted(undocumented)}"
