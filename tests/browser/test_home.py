"""The admin home page in the browser: each role signs in (with its second factor where it must) and lands
on what it came to do; the auditor downloads last quarter's evidence in one click."""

from __future__ import annotations

import zipfile
from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.utils import timezone

from audit.services import audit_checkpoints_write
from config.home import last_full_quarter
from keys import services as key_services
from prompts import services as prompt_services
from tests.browser.signin import sign_in
from tests.factories import version_content
from usage.choices import CapScope, Period
from usage.services import Cap, spend_settle
from usage.settlement import spend_reserve

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SECTIONS = ("review", "releases", "rotations", "caps", "alerts", "chain", "evidence")


@pytest.fixture(autouse=True)
def anchor_dir(tmp_path, settings):
    settings.TOLLGATE_AUDIT_ANCHOR_DIR = tmp_path / "anchors"


def shown(page) -> set[str]:
    return {name for name in SECTIONS if page.locator(f"#home-{name}").count()}


def open_home(page, base: str, user) -> None:
    sign_in(page, base, user)
    page.goto(f"{base}/admin/")
    page.wait_for_selector("#home-alerts")


def test_an_approver_lands_on_the_versions_waiting_for_review(live_server, page, author, approver):
    prompt = prompt_services.prompt_create(actor=author, slug="triage", name="Triage", purpose="x", owner=author)
    version = prompt_services.prompt_version_create(
        actor=author, prompt=prompt, content=version_content(), change_summary="Sort tickets by urgency"
    )
    prompt_services.prompt_version_submit(actor=author, version=version)

    open_home(page, live_server.url, approver)

    assert shown(page) == {"review", "releases", "alerts"}
    assert "Sort tickets by urgency" in page.inner_text("#home-review")
    assert page.locator("#app-list, .app-prompts").count() >= 1  # the app list is still there
    page.click("#home-review a:has-text('triage v1')")
    page.wait_for_url(f"**/admin/prompts/promptversion/{version.pk}/change/")


def test_a_custodian_lands_on_overdue_keys_and_caps_near_their_limit(live_server, page, custodian):
    with time_machine.travel(timezone.now() - timedelta(days=40), tick=False):
        key_services.provider_key_create(
            actor=custodian, environment="production", label="prod-key", secret="sk-ant-test-key-00000001",
            owner=custodian, monthly_cap_usd=Decimal(100), rotation_period_days=30,
        )  # fmt: skip
    reservation = spend_reserve(
        request_id="r", amount=Decimal(10),
        caps=[Cap(CapScope.API_CLIENT, 7, Period.MONTH, Decimal(10), "support-app")],
    )  # fmt: skip
    spend_settle(reservation=reservation, actual=Decimal("8.50"))

    open_home(page, live_server.url, custodian)

    assert shown(page) == {"rotations", "caps", "alerts"}
    rotations = page.inner_text("#home-rotations")
    assert "prod-key" in rotations
    assert "overdue" in rotations
    caps = page.inner_text("#home-caps")
    assert "support-app" in caps
    assert "85%" in caps


def test_an_auditor_sees_the_chain_and_downloads_last_quarters_evidence_in_one_click(live_server, page, auditor):
    with time_machine.travel(timezone.now() + timedelta(hours=1), tick=False):  # the current hour is whole
        audit_checkpoints_write()
    quarter = last_full_quarter(timezone.now().date())

    open_home(page, live_server.url, auditor)

    assert shown(page) == {"chain", "evidence", "alerts"}
    assert "events to #" in page.inner_text("#home-chain")
    assert quarter.name in page.inner_text("#home-evidence")
    with page.expect_download() as download_info:
        page.click("#home-evidence-alerts input[type=submit]")
    download = download_info.value
    assert download.suggested_filename == f"tollgate-alerts-{quarter.first_day}-{quarter.last_day}.zip"
    with zipfile.ZipFile(download.path()) as package:
        assert "manifest.json" in package.namelist()
