"""Rules of the house that import-linter cannot state: every call to Anthropic goes through
gateway/upstream.py (the allow-list check, the pooled client, the released database connection and the
failure mapping live there), and no module imports another app's module inside a function to dodge a
circle (AppConfig.ready registers what an app contributes, which is the one place for it)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
APPS = ("core", "audit", "usage", "keys", "identity", "prompts", "gateway", "evaluations", "config")
MODULES = sorted(path for app in APPS for path in (ROOT / app).rglob("*.py") if "migrations" not in path.parts)


def _imports(path: Path) -> list[tuple[ast.AST, str, bool]]:
    """(node, module imported, at module level) of every import in `path`."""
    tree = ast.parse(path.read_text())
    top = {id(node) for node in tree.body}
    found: list[tuple[ast.AST, str, bool]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node, alias.name, id(node) in top) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append((node, node.module, id(node) in top))
    return found


def test_the_modules_are_found() -> None:
    assert ROOT / "gateway" / "upstream.py" in MODULES
    assert len(MODULES) > 100


@pytest.mark.parametrize("path", MODULES, ids=lambda path: str(path.relative_to(ROOT)))
def test_only_the_upstream_module_talks_to_anthropic(path: Path) -> None:
    if path == ROOT / "gateway" / "upstream.py":
        return
    sdk = [module for _, module, _ in _imports(path) if module == "anthropic" or module.startswith("anthropic.")]
    assert not sdk, f"{path.relative_to(ROOT)} imports the SDK; call Anthropic through gateway/upstream.py"


@pytest.mark.parametrize("path", MODULES, ids=lambda path: str(path.relative_to(ROOT)))
def test_no_app_module_is_imported_inside_a_function_but_for_registration(path: Path) -> None:
    if path.name == "apps.py":
        return  # AppConfig.ready: where an app registers receivers, tasks, evidence and metrics
    inner = [module for _, module, at_top in _imports(path) if not at_top and module.split(".")[0] in APPS]
    assert not inner, f"{path.relative_to(ROOT)} imports {inner} inside a function"
