"""The prompt registry in the admin: who may do what, the diff approvers see, and history pages."""

from __future__ import annotations

import json

import pytest

from audit.models import AuditEvent
from prompts import services
from prompts.choices import VersionStatus
from prompts.models import Prompt, PromptVersion, Release
from tests.factories import version_content

pytestmark = pytest.mark.django_db

PERSONAS = ["author", "approver", "auditor", "custodian", "outsider"]


def transition(client, version, action, **data):
    return client.post(f"/admin/prompts/promptversion/{version.pk}/do/{action}/", data)


def status_of(version):
    return PromptVersion.objects.get(pk=version.pk).status


@pytest.mark.parametrize(
    ("persona", "expected"),
    [("author", 200), ("approver", 200), ("auditor", 200), ("custodian", 403), ("outsider", 403)],
)
def test_who_can_read_the_registry(client, request, prompt, draft, persona, expected):
    client.force_login(request.getfixturevalue(persona))

    assert client.get("/admin/prompts/prompt/").status_code == expected
    assert client.get(f"/admin/prompts/promptversion/{draft.pk}/change/").status_code == expected
    assert client.get(f"/admin/prompts/promptversion/{draft.pk}/history/").status_code == expected


@pytest.mark.parametrize(("persona", "allowed"), [(p, p == "author") for p in PERSONAS])
def test_only_authors_write_versions(client, request, prompt, persona, allowed):
    client.force_login(request.getfixturevalue(persona))
    content = version_content()
    form = {
        **{k: (json.dumps(v) if isinstance(v, list | dict) else v) for k, v in content.items()},
        "prompt": prompt.pk,
        "change_summary": "Written in the admin",
    }

    response = client.post("/admin/prompts/promptversion/add/", form)

    assert PromptVersion.objects.filter(prompt=prompt).exists() is allowed
    if allowed:
        assert response.status_code == 302
        assert AuditEvent.objects.filter(action="prompt_version.create").exists()
    else:
        assert response.status_code == 403


@pytest.mark.parametrize(("persona", "allowed"), [(p, p == "author") for p in PERSONAS])
def test_only_authors_submit(client, request, draft, persona, allowed):
    client.force_login(request.getfixturevalue(persona))

    transition(client, draft, "submit")

    assert (status_of(draft) == VersionStatus.IN_REVIEW) is allowed


@pytest.mark.parametrize(("persona", "allowed"), [(p, p == "approver") for p in PERSONAS])
def test_only_approvers_approve(client, request, in_review, persona, allowed):
    client.force_login(request.getfixturevalue(persona))

    transition(client, in_review, "approve", reason="Checked against the policy")

    assert (status_of(in_review) == VersionStatus.APPROVED) is allowed


@pytest.mark.parametrize(("persona", "allowed"), [(p, p == "approver") for p in PERSONAS])
def test_only_approvers_release(client, request, approved, persona, allowed):
    client.force_login(request.getfixturevalue(persona))

    transition(client, approved, "release", environment="development", reason="Try it in dev")

    assert Release.objects.filter(version=approved).exists() is allowed


def test_a_refused_transition_shows_why_and_changes_nothing(client, approver, in_review):
    client.force_login(approver)

    response = transition(client, in_review, "approve", reason="")

    assert response.status_code == 200
    assert "A reason is required" in response.content.decode()
    assert status_of(in_review) == VersionStatus.IN_REVIEW


def test_the_author_is_not_offered_approve_and_is_refused_anyway(client, superuser, prompt):
    own = services.prompt_version_create(actor=superuser, prompt=prompt, content=version_content(), change_summary="x")
    services.prompt_version_submit(actor=superuser, version=own)
    client.force_login(superuser)

    page = client.get(f"/admin/prompts/promptversion/{own.pk}/change/").content.decode()
    response = transition(client, own, "approve", reason="self-approval")

    assert 'id="action-approve"' not in page
    assert "cannot approve it: a second person must" in response.content.decode()
    assert status_of(own) == VersionStatus.IN_REVIEW


def test_submitted_content_is_read_only_for_everyone(client, superuser, in_review):
    client.force_login(superuser)

    page = client.get(f"/admin/prompts/promptversion/{in_review.pk}/change/").content.decode()
    client.post(f"/admin/prompts/promptversion/{in_review.pk}/change/", {"system_prompt": "changed"})

    assert 'name="system_prompt"' not in page
    assert PromptVersion.objects.get(pk=in_review.pk).system_prompt == in_review.system_prompt


def test_the_approver_sees_what_changed_against_live_and_previous(client, approver, author, approved):
    for environment in ("development", "staging"):
        services.prompt_version_release(actor=approver, version=approved, environment=environment, reason="go")
    v2 = services.prompt_version_new_draft(actor=author, source=approved)
    services.prompt_version_update(
        actor=author,
        version=v2,
        content={
            "system_prompt": approved.system_prompt + "\nNever include the customer's e-mail address.",
            "model": "claude-haiku-4-5",
        },
        change_summary="Keep e-mail addresses out of summaries",
    )
    services.prompt_version_submit(actor=author, version=v2)
    client.force_login(approver)

    page = client.get(f"/admin/prompts/promptversion/{v2.pk}/change/").content.decode()

    assert "Changes against v1, live in staging" in page
    assert "+ Never include the customer&#x27;s e-mail address." in page
    assert 'claude-sonnet-4-6</span> → <span class="tg-add">claude-haiku-4-5' in page
    assert 'id="action-approve"' in page


def test_the_prompt_list_shows_what_is_live_and_pending(client, approver, approved, author, prompt):
    services.prompt_version_release(actor=approver, version=approved, environment="development", reason="dev")
    v2 = services.prompt_version_new_draft(actor=author, source=approved)
    services.prompt_version_submit(actor=author, version=v2)
    client.force_login(approver)

    page = client.get("/admin/prompts/prompt/").content.decode()

    assert "v1 / — / —" in page
    assert '<td class="field-pending_reviews">1</td>' in page


def test_editing_a_prompt_needs_a_reason_and_is_audited(client, author, prompt):
    client.force_login(author)
    form = {
        "name": "Renamed",
        "purpose": prompt.purpose,
        "owner": author.pk,
        "team": "support",
        "data_categories": ["personal", "financial"],
    }

    refused = client.post(f"/admin/prompts/prompt/{prompt.pk}/change/", form)
    accepted = client.post(f"/admin/prompts/prompt/{prompt.pk}/change/", {**form, "reason": "Support owns it now"})

    assert refused.status_code == 200
    assert accepted.status_code == 302
    prompt.refresh_from_db()
    assert (prompt.name, prompt.data_categories) == ("Renamed", ["personal", "financial"])
    assert prompt.history.first().history_change_reason == "Support owns it now"
    assert AuditEvent.objects.get(action="prompt.update").changes["name"] == ["Support ticket summary", "Renamed"]


def test_an_approver_rolls_back_a_release(client, approver, author, approved):
    services.prompt_version_release(actor=approver, version=approved, environment="development", reason="v1")
    v2 = services.prompt_version_new_draft(actor=author, source=approved)
    services.prompt_version_submit(actor=author, version=v2)
    services.prompt_version_approve(actor=approver, version=v2, note="ok")
    release = services.prompt_version_release(actor=approver, version=v2, environment="development", reason="v2")
    client.force_login(approver)

    client.post(f"/admin/prompts/release/{release.pk}/rollback/", {"reason": "v2 regressed"})

    assert Release.objects.get(pk=release.pk).version == approved


def test_nobody_deletes_prompts_or_versions(client, superuser, approved):
    client.force_login(superuser)

    assert client.post(f"/admin/prompts/promptversion/{approved.pk}/delete/", {"post": "yes"}).status_code == 403
    assert client.post(f"/admin/prompts/prompt/{approved.prompt_id}/delete/", {"post": "yes"}).status_code == 403
    assert Prompt.objects.exists()


def test_the_version_page_estimates_tokens_and_cost(client, approver, in_review):
    client.force_login(approver)

    html = client.get(f"/admin/prompts/promptversion/{in_review.pk}/change/").content.decode()

    # 84 characters of system prompt: 21 tokens; at most 400 output tokens on Sonnet 4.6
    assert "System prompt ≈ 21 tokens" in html
    assert "per 1,000 requests on claude-sonnet-4-6" in html
