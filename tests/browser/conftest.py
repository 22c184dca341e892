"""Headless Chromium (Debian's, never a downloaded build) driven by Playwright against the live server."""

from __future__ import annotations

import inspect
import os
import shutil
from collections.abc import Iterator

import pytest

CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str:
    path = os.environ.get("TOLLGATE_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        # A fresh developer machine may lack it; CI installs it, and its PostgreSQL run fails on any skip.
        pytest.skip("browser tests need Debian's Chromium: apt-get install chromium (see docs/development.md)")
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """One Chromium per test module: Playwright's event loop must not outlive the module's tests."""
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the ORM calls of the test itself are
    # still synchronous, so Django's guard against ORM use inside a loop does not apply here.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_FLAGS)
            yield browser
            browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


# Reports every Content-Security-Policy violation to the console, where `page` collects it. Playwright's
# init scripts are not subject to the page's policy.
REPORT_CSP_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) => {
  console.error(`CSP violation: ${event.violatedDirective} blocked ${event.blockedURI || "inline"}`);
});
"""


def is_csp_violation(text: str) -> bool:
    return text.startswith(("CSP violation:", "Refused to")) or "Content Security Policy" in text


@pytest.fixture
def csp_violations() -> list[str]:
    return []


@pytest.fixture
def page(browser, csp_violations: list[str], request: pytest.FixtureRequest) -> Iterator[object]:
    """A fresh browser context. A test fails if the page broke its Content-Security-Policy (an inline
    script or style without the nonce, a style attribute, an asset from elsewhere), unless it asked for
    the violations itself (`csp_violations`) to check them."""
    context = browser.new_context()
    context.add_init_script(REPORT_CSP_VIOLATIONS)
    page = context.new_page()
    page.on("console", lambda message: csp_violations.append(message.text) if is_csp_violation(message.text) else None)
    page.set_default_timeout(15_000)
    yield page
    context.close()
    if "csp_violations" not in inspect.signature(request.function).parameters:
        assert not csp_violations, f"Content-Security-Policy violations: {csp_violations}"
