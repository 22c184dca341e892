"""A prompt's page in the admin: its versions and the next steps each reader may take, what is live where,
evaluations, the last 30 days of usage, and the comparison of any two versions."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import count

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from core.roles import Role
from evaluations.models import EvaluationRun
from prompts import services
from tests.factories import UserFactory, version_content
from usage.models import UsageRollup

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
_keys = count()


def page_url(prompt):
    return f"/admin/prompts/prompt/{prompt.pk}/change/"


def compare_url(prompt):
    return f"/admin/prompts/prompt/{prompt.pk}/compare/"


def approve(version, author, approver):
    services.prompt_version_submit(actor=author, version=version)
    return services.prompt_version_approve(actor=approver, version=version, note="Checked")


def new_version(prompt, author, summary, **content):
    return services.prompt_version_create(
        actor=author, prompt=prompt, content=version_content(**content), change_summary=summary
    )


@pytest.fixture
def history(prompt, author, approver):
    """v1 live in staging and production, v2 live in development (after v1 was), v3 in review, v4 a draft."""
    v1 = approve(new_version(prompt, author, "First wording"), author, approver)
    for environment in ("development", "staging", "production"):
        services.prompt_version_release(actor=approver, version=v1, environment=environment, reason="Launch")
    v2 = approve(new_version(prompt, author, "Shorter summaries", max_tokens=300), author, approver)
    services.prompt_version_release(actor=approver, version=v2, environment="development", reason="Try it")
    v3 = new_version(prompt, author, "Mention the product", system_prompt="You summarise tickets. Name the product.")
    v3 = services.prompt_version_submit(actor=author, version=v3)
    v4 = new_version(prompt, author, "Work in progress")
    return {"v1": v1, "v2": v2, "v3": v3, "v4": v4}


def rollup(slug, version, hour, *, calls=1, outcome="ok", cost="0.01", input_tokens=100, output_tokens=50):
    return UsageRollup.objects.create(
        key=f"test-{next(_keys)}",
        hour=hour,
        environment="production",
        prompt_slug=slug,
        prompt_version=version,
        model="claude-sonnet-4-6",
        endpoint="run",
        outcome=outcome,
        calls=calls,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read_tokens=10,
        cost_usd=Decimal(cost),
    )


def rows_of(html, table_id):
    """The text of each body row of a table, cells joined by " | "."""
    table = re.search(rf'id="{table_id}".*?<tbody>(.*?)</tbody>', html, re.S)
    assert table, f"no table #{table_id}"
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", table.group(1), re.S)
    return [
        " | ".join(re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S))
        for row in rows
    ]


def version_row(html, number):
    row = re.search(rf'<tr id="version-{number}">(.*?)</tr>', html, re.S)
    assert row, f"no row for v{number}"
    return row.group(1)


# --- versions, live releases, evaluations ------------------------------------------------------------------


def test_it_lists_the_versions_newest_first_with_who_did_what_and_when(client, author, history):
    client.force_login(author)

    html = client.get(page_url(history["v1"].prompt)).content.decode()

    numbers = re.findall(r'<tr id="version-(\d+)">', html)
    assert numbers == ["4", "3", "2", "1"]
    v2 = history["v2"]
    row = version_row(html, 2)
    assert f'href="/admin/prompts/promptversion/{v2.pk}/change/"' in row
    assert "Approved" in row
    assert "Shorter summaries" in row
    assert f"{v2.reviewed_at:%Y-%m-%d %H:%M} by bob-approver" in row
    assert "In review" in version_row(html, 3)
    assert f"{history['v3'].submitted_at:%Y-%m-%d %H:%M}" in version_row(html, 3)
    assert "Draft" in version_row(html, 4)
    assert "alice-author" in version_row(html, 4)
    assert "The prompt's details" in html
    assert 'name="purpose"' in html


def test_it_shows_what_is_live_in_each_environment_since_when_and_offers_the_rollback_to_releasers(
    client, author, approver, history
):
    prompt = history["v1"].prompt
    client.force_login(approver)

    html = client.get(page_url(prompt)).content.decode()

    live = rows_of(html, "prompt-live")
    assert live[0].startswith("Development | v2")
    assert "Try it" in live[0]
    assert "bob-approver" in live[0]
    assert live[1].startswith("Staging | v1")
    assert live[2].startswith("Production | v1")
    release = prompt.releases.get(environment="development")
    assert f"{release.released_at:%Y-%m-%d %H:%M} UTC" in live[0]
    assert f'href="/admin/prompts/release/{release.pk}/rollback/"' in html  # back to v1
    assert 'id="rollback-staging"' not in html  # nothing was live in staging before v1

    client.force_login(author)
    assert "/rollback/" not in client.get(page_url(prompt)).content.decode()


def test_a_prompt_with_nothing_live_says_so(client, author, draft):
    client.force_login(author)

    html = client.get(page_url(draft.prompt)).content.decode()

    assert [row.split(" | ")[1] for row in rows_of(html, "prompt-live")] == ["nothing live"] * 3
    assert "No calls since" in html


def test_each_version_shows_its_latest_evaluation(client, author, history):
    v2, v3 = history["v2"], history["v3"]
    for status, passed, minutes in (("failed", 1, 1), ("passed", 3, 2)):
        EvaluationRun.objects.create(version=v2, content_hash=v2.content_hash, trigger="manual", status=status,
                                     environment="development", cases_total=3, cases_passed=passed,
                                     pass_rate=passed / 3, created_at=NOW + timedelta(minutes=minutes))  # fmt: skip
    EvaluationRun.objects.create(version=v3, content_hash=v3.content_hash, trigger="manual", environment="development")
    client.force_login(author)

    html = client.get(page_url(v2.prompt)).content.decode()

    assert "Passed · 3/3" in text_of(version_row(html, 2))
    assert "Failed" not in version_row(html, 2)
    assert "Queued" in text_of(version_row(html, 3))
    assert "evaluationrun" not in version_row(html, 1)


# --- next steps, by role ------------------------------------------------------------------------------------


def text_of(html):
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def actions_in(html, number):
    return re.findall(rf'id="action-([a-z_]+)-v{number}"', version_row(html, number))


def test_the_next_steps_offered_are_those_the_readers_role_allows(client, author, approver, auditor, history):
    prompt = history["v1"].prompt

    client.force_login(author)
    html = client.get(page_url(prompt)).content.decode()
    assert actions_in(html, 4) == ["submit", "new_draft"]
    assert actions_in(html, 3) == ["new_draft", "evaluate"]
    assert actions_in(html, 2) == ["new_draft", "evaluate"]

    client.force_login(approver)
    html = client.get(page_url(prompt)).content.decode()
    assert actions_in(html, 4) == []
    assert actions_in(html, 3) == ["approve", "reject", "evaluate"]
    assert actions_in(html, 2) == ["release", "retire", "evaluate"]
    v3 = history["v3"]
    assert f'href="/admin/prompts/promptversion/{v3.pk}/do/approve/"' in version_row(html, 3)

    client.force_login(auditor)
    html = client.get(page_url(prompt)).content.decode()
    assert all(actions_in(html, number) == [] for number in (1, 2, 3, 4))
    assert 'name="purpose"' not in html  # auditors read the prompt's fields, they do not edit them


def test_an_author_who_also_approves_is_never_offered_the_review_of_their_own_version(client, prompt, approver):
    both = UserFactory(username="pat-both", roles=[Role.PROMPT_AUTHORS, Role.PROMPT_APPROVERS])
    own = new_version(prompt, both, "Mine")
    services.prompt_version_submit(actor=both, version=own)
    client.force_login(both)

    html = client.get(page_url(prompt)).content.decode()

    assert "approve" not in actions_in(html, own.number)
    assert "reject" not in actions_in(html, own.number)


def test_drafts_and_versions_in_review_offer_the_playground_to_those_who_may_try(client, author, approver, history):
    from django.urls import reverse

    client.force_login(author)
    html = client.get(page_url(history["v1"].prompt)).content.decode()
    version_page = client.get(reverse("admin:prompts_promptversion_change", args=[history["v3"].pk])).content.decode()

    for number in (4, 3):  # the draft and the version in review
        assert f'href="{reverse("playground", args=[history[f"v{number}"].pk])}"' in version_row(html, number)
    assert "Try in playground" not in version_row(html, 2)  # approved: decided, never tried again
    assert f'href="{reverse("playground", args=[history["v3"].pk])}"' in version_page

    client.force_login(approver)  # reviews, but does not try versions
    assert "Try in playground" not in client.get(page_url(history["v1"].prompt)).content.decode()


# --- usage -------------------------------------------------------------------------------------------------


def test_usage_of_the_last_30_days_per_day_and_per_version(client, author, history, time_machine):
    time_machine.move_to(NOW)
    slug = history["v1"].prompt.slug
    today = NOW.replace(hour=0)
    rollup(slug, 1, today + timedelta(hours=3), calls=10, cost="0.10")
    rollup(slug, 1, today + timedelta(hours=4), calls=4, outcome="overloaded", cost="0.04")
    rollup(slug, 2, today - timedelta(days=1, hours=-5), calls=5, cost="0.50", input_tokens=200)
    rollup(slug, 2, today - timedelta(days=29), calls=2, cost="0.02")
    rollup(slug, 2, today - timedelta(days=30), calls=1000, cost="9")  # before the window
    rollup("another-prompt", 1, today, calls=1000, cost="9")
    client.force_login(author)

    html = client.get(page_url(history["v1"].prompt)).content.decode()

    assert rows_of(html, "usage-days") == [
        "2026-11-20 | 14 | 4 | 220 | 100 | 0.1400",
        "2026-11-19 | 5 | 0 | 210 | 50 | 0.5000",
        "2026-10-22 | 2 | 0 | 110 | 50 | 0.0200",
    ]
    assert rows_of(html, "usage-versions") == ["v2 | 7 | 0 | 320 | 100 | 0.5200", "v1 | 14 | 4 | 220 | 100 | 0.1400"]
    assert "21 calls · 4 errors · 540 tokens in, 200 out · $0.6600" in text_of(html)


# --- bounded queries ------------------------------------------------------------------------------------------


def many_versions(prompt, author, approver, n):
    for number in range(n):
        version = approve(new_version(prompt, author, f"Change {number}", max_tokens=100 + number), author, approver)
        EvaluationRun.objects.create(version=version, content_hash=version.content_hash, trigger="manual",
                                     environment="development", status="passed", cases_total=1, cases_passed=1,
                                     pass_rate=1.0)  # fmt: skip
        rollup(prompt.slug, version.number, datetime.now(UTC), calls=3)
        if number % 3 == 0:
            services.prompt_version_release(actor=approver, version=version, environment="development", reason="x")


def test_the_page_reads_a_fixed_number_of_queries_however_many_versions(
    client, prompt, author, approver, django_assert_max_num_queries
):
    many_versions(prompt, author, approver, 2)
    client.force_login(approver)
    with CaptureQueriesContext(connection) as few:
        assert client.get(page_url(prompt)).status_code == 200
    many_versions(prompt, author, approver, 25)

    with django_assert_max_num_queries(len(few.captured_queries)):
        html = client.get(page_url(prompt)).content.decode()

    assert len(re.findall(r'<tr id="version-\d+">', html)) == 27
    assert len(few.captured_queries) < 40


# --- compare -------------------------------------------------------------------------------------------------


def test_compare_shows_every_kind_of_difference_between_two_chosen_versions(client, prompt, author, approver):
    v1 = new_version(prompt, author, "Before")
    v2 = new_version(
        prompt,
        author,
        "After",
        system_prompt="You summarise tickets. Never name the customer.",
        variables=[{"name": "ticket", "type": "string", "required": True, "max_length": 9000}],
        user_template="Summarise this ticket:\n{{ ticket }}",
        model="claude-haiku-4-5",
        max_tokens=250,
        cache_ttl="1h",
        routing={},
        output_checks={"max_length": 500, "required_patterns": ["Summary:"]},
        redaction={"terms": ["Project Falcon"], "patterns": ["ORD-[0-9]{6}"]},
    )
    client.force_login(approver)

    response = client.get(compare_url(prompt), {"a": v1.pk, "b": v2.pk})

    assert response.status_code == 200
    html = response.content.decode()
    diff = html[html.index('id="compare-diff"') :]
    for label in ("System prompt", "Variables", "Model", "Max tokens", "Routing", "Output checks", "Extra redaction"):
        assert f"<h4>{label}</h4>" in diff, label
    assert "+ You summarise tickets. Never name the customer." in diff
    assert 'claude-sonnet-4-6</span> → <span class="tg-add">claude-haiku-4-5' in diff
    assert "ORD-[0-9]{6}" in diff
    assert "Summary:" in diff
    assert "Before" in html
    assert "After" in html


def test_the_page_links_to_compare_with_the_two_newest_versions_chosen(client, author, history):
    client.force_login(author)

    html = client.get(page_url(history["v1"].prompt)).content.decode()

    form = html[html.index('id="compare-form"') : html.index("</form>", html.index('id="compare-form"'))]
    assert f'<option value="{history["v3"].pk}" selected>' in form.split('name="b"')[0]  # a: the previous one
    assert f'<option value="{history["v4"].pk}" selected>' in form.split('name="b"')[1]  # b: the newest


def test_compare_without_versions_offers_the_picker(client, author, history):
    client.force_login(author)

    response = client.get(compare_url(history["v1"].prompt))

    assert response.status_code == 200
    assert 'id="compare-form"' in response.content.decode()
    assert 'id="compare-diff"' not in response.content.decode()


def test_compare_refuses_another_prompts_versions_and_the_same_version_twice(client, prompt, author, history):
    other = services.prompt_create(actor=author, slug="other", name="Other", purpose="x", owner=author)
    foreign = new_version(other, author, "Elsewhere")
    client.force_login(author)

    foreign_answer = client.get(compare_url(prompt), {"a": history["v1"].pk, "b": foreign.pk})
    same_answer = client.get(compare_url(prompt), {"a": history["v1"].pk, "b": history["v1"].pk})

    assert foreign_answer.status_code == 400
    assert "Second version: Select a valid choice" in foreign_answer.content.decode()
    assert "Elsewhere" not in foreign_answer.content.decode()
    assert same_answer.status_code == 400
    assert "Pick two different versions." in same_answer.content.decode()
    assert client.get(f"/admin/prompts/prompt/{other.pk + 1000}/compare/").status_code in (302, 404)


def test_compare_is_refused_to_those_who_may_not_read_prompts(client, custodian, history):
    client.force_login(custodian)

    assert (
        client.get(compare_url(history["v1"].prompt), {"a": history["v1"].pk, "b": history["v2"].pk}).status_code == 403
    )


HOSTILE = st.one_of(
    st.none(),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.text(max_size=30),
    st.sampled_from(["v1", "own", "foreign", "1.5", "0x10", " 1", "1e3", "[]", "%00", "\x00"]),
)


@pytest.fixture
def foreign(author):
    """A version of another prompt."""
    other = services.prompt_create(actor=author, slug="other", name="Other", purpose="x", owner=author)
    return new_version(other, author, "Elsewhere")


@hypothesis_settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(a=HOSTILE, b=HOSTILE)
def test_compare_answers_every_input_without_a_server_error(client, author, history, foreign, a, b):
    named = {"own": str(history["v2"].pk), "foreign": str(foreign.pk)}
    params = {name: named.get(value, value) for name, value in (("a", a), ("b", b)) if value is not None}
    client.force_login(author)

    response = client.get(compare_url(history["v1"].prompt), params)

    assert response.status_code in (200, 400)
    if response.status_code == 200 and params:  # only two distinct versions of this prompt are compared
        own = {version.pk for version in history.values()}
        assert int(params["a"]) in own
        assert int(params["b"]) in own
        assert int(params["a"]) != int(params["b"])
