"""The admin home page by role (config/home.py): each person sees what they came to do, and only that."""

from __future__ import annotations

import io
import re
from datetime import date, timedelta
from decimal import Decimal
from itertools import count

import pytest
import time_machine
from django.contrib.auth.models import Group, Permission, User
from django.core.management import call_command
from django.test import Client
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audit.models import AuditEvent
from audit.services import audit_checkpoints_write
from audit.tasks import chain_verify
from config.home import LIMIT, SECTION_PERMISSIONS, home_sections, last_full_quarter, sections_visible
from core.context import access_change
from core.roles import ROLE_PERMISSIONS, Role
from keys import services as key_services
from prompts import services as prompt_services
from prompts.models import Prompt, PromptVersion
from tests.audit.test_chain import tampering
from tests.factories import UserFactory, version_content
from usage.choices import CapScope, Period
from usage.models import BudgetAlert, MonitorAlert
from usage.services import Cap, spend_settle
from usage.settlement import spend_reserve

pytestmark = pytest.mark.django_db

ALL_SECTIONS = {"alerts", *SECTION_PERMISSIONS}


@pytest.fixture(autouse=True)
def anchor_dir(tmp_path, settings):
    settings.TOLLGATE_AUDIT_ANCHOR_DIR = tmp_path / "anchors"


def home(client: Client, user: User) -> str:
    client.force_login(user)
    response = client.get("/admin/")
    assert response.status_code == 200
    return response.content.decode()


def shown(html: str) -> set[str]:
    return set(re.findall(r'<div class="module" id="home-(\w+)"', html))


def prompt_with(author: User, slug: str) -> Prompt:
    return prompt_services.prompt_create(actor=author, slug=slug, name=slug, purpose="x", owner=author)


def submitted(author: User, prompt: Prompt, summary: str) -> PromptVersion:
    version = prompt_services.prompt_version_create(
        actor=author, prompt=prompt, content=version_content(), change_summary=summary
    )
    return prompt_services.prompt_version_submit(actor=author, version=version)


def approved(author: User, approver: User, prompt: Prompt, summary: str) -> PromptVersion:
    version = submitted(author, prompt, summary)
    return prompt_services.prompt_version_approve(actor=approver, version=version, note="ok")


# --- who sees which section -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("persona", "sections"),
    [
        ("outsider", {"alerts"}),
        ("author", {"alerts"}),
        ("approver", {"alerts", "review", "releases"}),
        ("custodian", {"alerts", "rotations", "caps"}),
        ("auditor", {"alerts", "chain", "evidence"}),
        ("superuser", ALL_SECTIONS),
    ],
)
def test_each_role_sees_its_sections_and_no_other(client, request, persona, sections):
    user = request.getfixturevalue(persona)

    html = home(client, user)

    assert sections_visible(user) == sections
    assert shown(html) == sections
    assert 'id="home-evidence-' in html if "evidence" in sections else 'id="home-evidence-' not in html
    assert ('class="app-' in html) == (persona != "outsider")  # the app list is kept (the outsider has no app)


def test_a_permission_held_directly_shows_its_section_as_the_role_would(client, outsider):
    with access_change(actor_repr="test"):
        outsider.user_permissions.add(Permission.objects.get(codename="review_promptversion"))
    outsider = User.objects.get(pk=outsider.pk)  # a fresh permission cache

    assert shown(home(client, outsider)) == {"alerts", "review"}


def test_the_signed_out_get_no_sections():
    from django.contrib.auth.models import AnonymousUser

    assert home_sections(user=AnonymousUser()) == {}


# --- review: four-eyes ------------------------------------------------------------------------------------


def test_an_approvers_inbox_holds_others_versions_oldest_first_and_their_own_apart(client, author, approver):
    writer_approver = UserFactory(username="grace", roles=[Role.PROMPT_AUTHORS, Role.PROMPT_APPROVERS])
    prompt = prompt_with(author, "triage")
    with time_machine.travel(timezone.now() - timedelta(days=3), tick=False):
        oldest = submitted(author, prompt, "oldest")
    with time_machine.travel(timezone.now() - timedelta(days=2), tick=False):
        own = submitted(writer_approver, prompt, "graces own")
    newest = submitted(author, prompt, "newest")

    sections = home_sections(user=writer_approver)
    html = home(client, writer_approver)

    assert sections["review"]["waiting"] == [oldest, newest]
    assert sections["review"]["yours"] == [own]
    inbox = html.split('id="home-review"')[1].split("<h3>Yours, waiting for someone else</h3>")
    assert "graces own" not in inbox[0]
    assert "graces own" in inbox[1]
    assert inbox[0].index("oldest") < inbox[0].index("newest")
    assert "3\xa0days" in inbox[0]  # its age
    assert f"/admin/prompts/promptversion/{oldest.pk}/change/" in inbox[0]
    # Another approver reviews grace's version: in their inbox, nothing of their own.
    assert home_sections(user=approver)["review"] == {"waiting": [oldest, own, newest], "waiting_count": 3, "yours": []}


# --- releases waiting -------------------------------------------------------------------------------------


def test_releases_waiting_are_newest_approved_versions_behind_where_the_prompt_is_live(author, approver):
    behind = prompt_with(author, "behind")
    v1 = approved(author, approver, behind, "v1")
    for environment in ("staging", "production"):
        prompt_services.prompt_version_release(actor=approver, version=v1, environment=environment, reason="x")
    v2 = approved(author, approver, behind, "v2")
    prompt_services.prompt_version_release(actor=approver, version=v2, environment="staging", reason="x")
    fresh = approved(author, approver, prompt_with(author, "fresh"), "v1")
    current = prompt_with(author, "current")
    live = approved(author, approver, current, "v1")
    prompt_services.prompt_version_release(actor=approver, version=live, environment="staging", reason="x")
    submitted(author, current, "in review, not approved")

    waiting = home_sections(user=approver)["releases"]

    assert [(item.version, item.environments) for item in waiting["waiting"]] == [(v2, ["production"]), (fresh, [])]
    assert waiting["count"] == 2


# --- key custodians ---------------------------------------------------------------------------------------


def test_a_custodian_sees_overdue_and_due_keys_and_not_the_others(client, custodian, approver):
    overdue = key_services.provider_key_create(
        actor=custodian, environment="production", label="old", secret="sk-ant-test-key-00000001",
        owner=custodian, monthly_cap_usd=Decimal(100), rotation_period_days=30,
    )  # fmt: skip
    with time_machine.travel(timezone.now() + timedelta(days=10), tick=False):
        soon = key_services.provider_key_create(
            actor=custodian, environment="staging", label="soon", secret="sk-ant-test-key-00000002",
            owner=custodian, monthly_cap_usd=Decimal(100), rotation_period_days=30,
        )  # fmt: skip
        key_services.provider_key_create(
            actor=custodian, environment="development", label="fine", secret="sk-ant-test-key-00000003",
            owner=custodian, monthly_cap_usd=Decimal(100),
        )  # fmt: skip
    with time_machine.travel(timezone.now() + timedelta(days=31), tick=False):
        rows = home_sections(user=custodian)["rotations"]
        html = home(client, custodian)

    assert [(row["key"], row["state"]) for row in rows] == [(overdue, "overdue"), (soon, "due soon")]
    section = html.split('id="home-rotations"')[1].split('<div class="module"')[0]
    assert "overdue" in section
    assert "due soon" in section
    assert "fine" not in section
    assert "rotations" not in home_sections(user=approver)


def test_a_custodian_sees_caps_near_their_limit_as_the_dashboard_computes_them(client, custodian):
    for scope_id, spent in ((1, "9.00"), (2, "1.00")):
        reservation = spend_reserve(
            request_id=f"r{scope_id}", amount=Decimal(10),
            caps=[Cap(CapScope.PROVIDER_KEY, scope_id, Period.MONTH, Decimal(10), f"key {scope_id}")],
        )  # fmt: skip
        spend_settle(reservation=reservation, actual=Decimal(spent))

    caps = home_sections(user=custodian)["caps"]["rows"]
    html = home(client, custodian)

    assert [(row["label"], row["percent"]) for row in caps] == [("key 1", 90.0)]
    section = html.split('id="home-caps"')[1].split('<div class="module"')[0]
    assert "key 1" in section
    assert "90%" in section
    assert "key 2" not in section


# --- alerts addressed to the person -----------------------------------------------------------------------


@pytest.fixture
def alerts(db):
    budget = BudgetAlert.objects.create(
        scope="provider_key", scope_id=1, label="prod key", period="month", period_start=date(2026, 11, 1),
        threshold_percent=80, spent_usd=Decimal(8), limit_usd=Decimal(10),
    )  # fmt: skip
    monitor = MonitorAlert.objects.create(kind="error_rate", subject="production/overloaded", value=0.2,
                                          threshold=0.05, window_start=timezone.now(), message="m")  # fmt: skip
    done = MonitorAlert.objects.create(
        kind="latency_p95", subject="acknowledged-one", value=9, threshold=1, window_start=timezone.now(),
        message="m", acknowledged_at=timezone.now(),
    )  # fmt: skip
    return {"budget": budget, "monitor": monitor, "done": done}


def test_alerts_are_shown_to_those_they_were_notified_to(client, alerts, custodian, approver, auditor, outsider):
    custodian_html = home(client, custodian)
    approver_html = home(Client(), approver)

    assert home_sections(user=custodian)["alerts"]["budget"] == [alerts["budget"]]
    assert home_sections(user=custodian)["alerts"]["monitor"] == [alerts["monitor"]]
    # Budget alerts are notified to key custodians only; monitor alerts to approvers and custodians.
    assert home_sections(user=approver)["alerts"]["budget"] == []
    assert home_sections(user=approver)["alerts"]["monitor"] == [alerts["monitor"]]
    assert "prod key" in custodian_html
    assert "prod key" not in approver_html
    assert "production/overloaded" in approver_html
    assert "acknowledged-one" not in approver_html
    for other in (auditor, outsider):
        section = home(Client(), other).split('id="home-alerts"')[1]
        assert "No open alert is addressed to you." in section
        assert "production/overloaded" not in section


def test_an_inactive_member_or_a_permission_held_directly_is_no_addressee(alerts, custodian, outsider):
    with access_change(actor_repr="test"):
        outsider.user_permissions.add(Permission.objects.get(codename="change_budgetalert"))
    custodian.is_active = False

    assert home_sections(user=User.objects.get(pk=outsider.pk))["alerts"]["budget"] == []
    assert home_sections(user=custodian) == {}


# --- auditors ---------------------------------------------------------------------------------------------


def test_an_auditor_sees_the_chain_as_its_checkpoints_left_it(client, auditor):
    now = timezone.now()
    with time_machine.travel(now + timedelta(hours=2), tick=False):
        audit_checkpoints_write()
        state = home_sections(user=auditor)["chain"]
        html = home(client, auditor)
    with time_machine.travel(now + timedelta(hours=5), tick=False):
        late = home_sections(user=auditor)["chain"]

    assert state.checkpoint is not None
    assert not state.late
    assert state.head_sequence >= state.checkpoint.last_sequence
    section = html.split('id="home-chain"')[1].split('<div class="module"')[0]
    assert f"events to #{state.checkpoint.last_sequence}" in section
    assert "on time" in section
    assert late.late


def test_an_auditor_sees_when_the_whole_chain_was_last_verified_and_how_it_went(client, auditor, settings, tmp_path):
    settings.TOLLGATE_AUDIT_ANCHOR_DIR = tmp_path / "anchors"
    with tampering() as cursor:  # a trail of this test's own: no event older than its anchors
        for table in ("audit_auditevent", "audit_auditcheckpoint", "audit_auditchainhead"):
            cursor.execute(f"DELETE FROM {table}")  # noqa: S608  (fixed names)
    assert "never (the daily verification has not run yet)" in home(client, auditor)

    chain_verify.delay()  # the daily beat task (in-process here)
    intact = home(client, auditor).split('id="home-chain-verified">')[1].split("</td>")[0]
    run = AuditEvent.objects.filter(action="audit.chain_verify").latest("sequence")

    assert run.actor_repr == "system"
    assert run.changes["result"] == "intact"
    assert f"intact, {run.changes['events']} events" in intact
    with tampering() as cursor:  # an event edited behind the application's back
        cursor.execute("UPDATE audit_auditevent SET reason = 'other' WHERE sequence = 1")
    with pytest.raises(SystemExit):
        call_command("verify_audit_chain", stdout=io.StringIO(), stderr=io.StringIO())
    broken = home(client, auditor).split('id="home-chain-verified">')[1].split("</td>")[0]

    assert "broken at #1" in broken
    assert "by cli:verify_audit_chain" in broken


def test_the_evidence_button_downloads_the_last_full_quarters_package(client, auditor):
    html = home(client, auditor)
    form = re.search(r'<form method="post" action="([^"]+)"[^>]*id="home-evidence-alerts">(.*?)</form>', html, re.S)
    assert form is not None
    fields = dict(re.findall(r'name="(\w+)" value="([^"]*)"', form.group(2)))
    quarter = last_full_quarter(timezone.now().date())

    response = client.post(form.group(1), fields)

    assert fields["first_day"] == quarter.first_day.isoformat()
    assert fields["last_day"] == quarter.last_day.isoformat()
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    assert f"tollgate-alerts-{quarter.first_day}-{quarter.last_day}.zip" in response["Content-Disposition"]


@pytest.mark.parametrize(
    ("today", "first", "last"),
    [
        (date(2026, 12, 1), date(2026, 7, 1), date(2026, 9, 30)),
        (date(2026, 1, 1), date(2025, 10, 1), date(2025, 12, 31)),
        (date(2026, 3, 31), date(2025, 10, 1), date(2025, 12, 31)),
        (date(2026, 4, 1), date(2026, 1, 1), date(2026, 3, 31)),
    ],
)
def test_the_last_full_quarter(today, first, last):
    quarter = last_full_quarter(today)

    assert (quarter.first_day, quarter.last_day) == (first, last)


# --- bounded queries --------------------------------------------------------------------------------------


def test_each_section_reads_a_bounded_number_of_rows_however_much_waits(
    client, author, approver, custodian, auditor, superuser, django_assert_max_num_queries
):
    for n in range(LIMIT + 3):
        prompt = prompt_with(author, f"p{n}")
        submitted(author, prompt, "review me")
        approved(author, approver, prompt, "release me")
        BudgetAlert.objects.create(scope="api_client", scope_id=n, label=f"c{n}", period="day",
                                   period_start=date(2026, 11, 1), threshold_percent=80, spent_usd=Decimal(9),
                                   limit_usd=Decimal(10))  # fmt: skip
    audit_checkpoints_write()

    for user, most in ((approver, 10), (custodian, 9), (auditor, 9), (superuser, 17)):
        user = User.objects.get(pk=user.pk)
        with django_assert_max_num_queries(most):
            sections = home_sections(user=user)
        assert all(len(section) <= LIMIT for section in _lists(sections))
    assert home_sections(user=superuser)["review"]["waiting_count"] == LIMIT + 3
    assert home_sections(user=superuser)["releases"]["count"] == LIMIT + 3
    assert home_sections(user=custodian)["alerts"]["budget_count"] == LIMIT + 3
    client.force_login(superuser)
    with django_assert_max_num_queries(31):  # the whole page: session, user, banner, sections, recent actions
        assert client.get("/admin/").status_code == 200


def _lists(sections):
    for value in sections.values():
        if isinstance(value, dict):
            yield from (item for item in value.values() if isinstance(item, list))
        elif isinstance(value, list):
            yield value


# --- generated: a section iff its permission, never an error ------------------------------------------------

RELEVANT = sorted({perm for perms in SECTION_PERMISSIONS.values() for perm in perms} | {"usage.view_usagerecord"})
_names = count()


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    direct=st.sets(st.sampled_from(RELEVANT)),
    roles=st.sets(st.sampled_from(list(Role))),
    superuser=st.booleans(),
)
def test_a_section_is_shown_iff_the_person_may_act_on_it(db, direct, roles, superuser):
    user = UserFactory(username=f"generated-{next(_names)}", roles=list(roles), is_superuser=superuser)
    with access_change(actor_repr="test"):
        for name in direct:
            app_label, codename = name.split(".")
            user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    held = set(direct) | {perm for role in roles for perm in ROLE_PERMISSIONS[role]}
    expected = {"alerts"} | {
        section for section, perms in SECTION_PERMISSIONS.items() if superuser or held & set(perms)
    }

    html = home(Client(), User.objects.get(pk=user.pk))

    assert shown(html) == expected
    assert Group.objects.filter(user=user).count() == len(roles)
