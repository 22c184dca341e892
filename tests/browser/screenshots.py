"""Screenshots for the docs: written into docs/img/ only when TOLLGATE_SCREENSHOTS=1 (then committed)."""

from __future__ import annotations

import os
from pathlib import Path

IMAGES = Path(__file__).resolve().parents[2] / "docs" / "img"


def save(page: object, name: str) -> None:
    if os.environ.get("TOLLGATE_SCREENSHOTS") == "1":
        IMAGES.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(IMAGES / f"{name}.png"), full_page=False)  # type: ignore[attr-defined]
