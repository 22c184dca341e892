"""Screenshots for the docs: `save(page, name)` writes docs/img/<name>.png when TOLLGATE_SCREENSHOTS=1."""

from __future__ import annotations

import os
from pathlib import Path

IMAGES = Path(__file__).resolve().parents[2] / "docs" / "img"


def save(page, name: str) -> None:
    if os.environ.get("TOLLGATE_SCREENSHOTS") == "1":
        IMAGES.mkdir(exist_ok=True)
        page.screenshot(path=str(IMAGES / f"{name}.png"), full_page=True)
