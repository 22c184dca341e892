"""Screenshots for the documentation: written to docs/img/<name>.png when TOLLGATE_SCREENSHOTS=1."""

from __future__ import annotations

import os
from pathlib import Path

DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"


def save(page: object, name: str) -> None:
    if os.environ.get("TOLLGATE_SCREENSHOTS") == "1":
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(DOCS_IMG / f"{name}.png"), full_page=True)  # type: ignore[attr-defined]
