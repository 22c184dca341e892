"""Browser libraries are served from our own static files (`make vendor`), exactly as package.json pins them."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHARTJS = ROOT / "core/static/vendor/chartjs"


def test_the_committed_chartjs_is_the_version_package_json_pins():
    pinned = json.loads((ROOT / "package.json").read_text())["dependencies"]["chart.js"]
    locked = json.loads((ROOT / "package-lock.json").read_text())["packages"]["node_modules/chart.js"]["version"]
    banner = (CHARTJS / "chart.umd.min.js").read_text()[:200]

    assert re.fullmatch(r"\d+\.\d+\.\d+", pinned), "pin an exact version"
    assert locked == pinned
    assert re.search(r"\* Chart\.js v(\S+)", banner).group(1) == pinned


def test_chartjs_comes_with_its_licences_and_the_map_it_names():
    script = (CHARTJS / "chart.umd.min.js").read_text()

    assert "MIT License" in (CHARTJS / "LICENSE.md").read_text()
    assert "MIT License" in (CHARTJS / "LICENSE-kurkle-color.md").read_text()
    # whitenoise's manifest storage (collectstatic) fails on a sourceMappingURL to a missing file
    (name,) = re.findall(r"sourceMappingURL=(\S+)", script)
    assert (CHARTJS / name).is_file()
    # script-src has no 'unsafe-eval'
    assert "eval(" not in script
    assert "new Function" not in script
