"""A hostile review of the admin pages of issue 19 (the cost of a change, the playground): each test is an
attack that once worked, written so that it fails if the mechanism that stops it is taken away."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.db import connection, transaction
from django.test import Client
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from audit.models import AuditEvent
from evaluations.costs import RETRY_AFTER
from evaluations.models import SystemPromptCount
from prompts import hooks, services
from tests.evaluations.test_cost_of_change import (  # noqa: F401  (dev_key, in_review: fixtures)
    count_requests,
    dev_key,
    in_review,
    rollup,
    sandbox_count,
)
from tests.evaluations.test_playground import CONTENT, FORM, lab, planted  # noqa: F401  (lab: a fixture)
from tests.factories import version_content
from tests.gateway.test_pii_invariant import _leaks
from tests.gateway.upstream import sandbox_requests
from usage.models import UsageRecord

pytestmark = pytest.mark.django_db


@pytest.mark.usefixtures("dev_key")
@pytest.mark.parametrize("persona", ["custodian", "outsider"])
def test_opening_a_version_in_review_without_the_permission_to_view_it_counts_nothing(world, persona, request):
    """The review page counts a version in review at Anthropic the first time it is shown: a staff member who
    may not view versions is refused the page, and must not trigger that upstream call (and its ledger row)
    on the way to the refusal."""
    version = request.getfixturevalue("in_review")
    browser = Client()
    browser.force_login(request.getfixturevalue(persona))

    for _ in range(3):
        assert browser.get(f"/admin/prompts/promptversion/{version.pk}/change/").status_code == 403

    assert count_requests(world) == []
    assert not UsageRecord.objects.filter(endpoint="count").exists()
    assert not SystemPromptCount.objects.exists()


@pytest.mark.parametrize("object_id", ["abc", "1.5", "%00", "-1x"])
def test_a_version_page_with_an_id_that_is_not_a_number_is_not_found(author, object_id):
    browser = Client()
    browser.force_login(author)

    assert browser.get(f"/admin/prompts/promptversion/{object_id}/change/").status_code in (302, 404)


def test_playground_tries_and_evaluations_are_not_the_live_versions_traffic(prompt, author, approver):
    """The monthly difference is priced at the live version's volume. When the prompt is live in development
    only, an author's playground tries (and evaluation runs) of the new version are calls of the prompt in
    that environment too: they must not inflate the volume the approval records in the evidence."""
    v1 = services.prompt_version_create(actor=author, prompt=prompt, content=version_content(), change_summary="v1")
    services.prompt_version_submit(actor=author, version=v1)
    services.prompt_version_approve(actor=approver, version=v1, note="ok")
    services.prompt_version_release(actor=approver, version=v1, environment="development", reason="try it")
    v2 = services.prompt_version_create(
        actor=author, prompt=prompt, content=version_content(system_prompt="Longer. " * 40), change_summary="v2"
    )
    services.prompt_version_submit(actor=author, version=v2)
    rollup(hours_ago=2, environment="development", calls=100, read=900, written=100)
    rollup(hours_ago=2, environment="development", endpoint="playground", calls=5000, written=70_000)
    rollup(hours_ago=3, environment="development", endpoint="evaluation", calls=3000, written=50_000)

    figure = hooks.costs().of_change(v2, count=False)

    assert (figure.live_environment, figure.live_version) == ("development", 1)
    assert figure.calls == 100
    assert figure.cache_hit_ratio == Decimal("0.9")


def _edit_in_the_database(version, system_prompt: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute("UPDATE prompts_promptversion SET system_prompt = %s WHERE id = %s", [system_prompt, version.pk])


@pytest.mark.usefixtures("dev_key")
def test_content_edited_behind_the_registrys_back_is_never_counted_as_the_versions_content(world, approver, request):
    """Counts are stored by content hash. A version whose system prompt was changed in the database (its hash
    left as it was) must not have the changed text counted and filed under the hash of what was reviewed:
    the figure (and the approval's evidence) would then be the count of different content."""
    version = request.getfixturevalue("in_review")
    reviewed = version.system_prompt
    _edit_in_the_database(version, reviewed + " Also: " + "be verbose. " * 200)
    browser = Client()
    browser.force_login(approver)

    page = browser.get(f"/admin/prompts/promptversion/{version.pk}/change/")

    assert "be verbose" not in json.dumps(count_requests(world))
    assert not SystemPromptCount.objects.filter(version=version, tokens__isnull=False).exists()

    assert "does not match its recorded content hash" in page.content.decode()

    _edit_in_the_database(version, reviewed)  # put back as reviewed; the failed count is tried again later
    with time_machine.travel(timezone.now() + RETRY_AFTER + timedelta(minutes=1)):
        browser.get(f"/admin/prompts/promptversion/{version.pk}/change/")

    stored = SystemPromptCount.objects.get(version=version, content_hash=version.content_hash)
    assert stored.tokens == sandbox_count(world, reviewed)


# --- the playground's routing path: what reaches Anthropic through a classifier ----------------------------

names = st.from_regex(r"[A-Z][a-z]{5,12} [A-Z][a-z]{6,14}", fullmatch=True)


def test_through_a_classifier_the_playground_sends_and_keeps_no_value_sensitive_in_either_prompt(
    lab,  # noqa: F811  (the playground's fixture)
    author,
    approver,
):
    """A draft routed by a classifier: the classifier (released in development) marks `ticket` sensitive, the
    draft does not. Whatever the ticket and the e-mail, neither call of the try sends them, and neither the
    ledger rows nor the audit event keep them."""
    tier = services.prompt_create(actor=author, slug="tier", name="Tier", purpose="routing", owner=author)
    classifier = services.prompt_version_create(
        actor=author,
        prompt=tier,
        content=version_content(
            user_template="{{ ticket }}",
            variables=[{"name": "ticket", "type": "string", "sensitive": True}],
            model="claude-haiku-4-5",
            routing={},
        ),
        change_summary="x",
    )
    services.prompt_version_submit(actor=author, version=classifier)
    services.prompt_version_approve(actor=approver, version=classifier, note="ok")
    services.prompt_version_release(actor=approver, version=classifier, environment="development", reason="x")
    routed = services.prompt_version_create(
        actor=author,
        prompt=lab["prompt"],
        content={**CONTENT, "routing": {"classifier": {"prompt": "tier", "routes": {"simple": "claude-haiku-4-5"}}}},
        change_summary="routed",
    )
    url = f"/admin/playground/{routed.pk}/"

    @hypothesis_settings(
        max_examples=15,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        derandomize=True,
    )
    @given(name=names, email=planted)
    def check(name, email):
        lab["sandbox"].call(lambda state: state.reset())
        ticket = f"{name} says the export button does nothing"
        with transaction.atomic():
            try:
                page = lab["browser"].post(url, {**FORM, "ticket": ticket, "customer_email": email[0]})
                assert page.status_code == 200, page.content
                sent = json.dumps(sandbox_requests(lab), ensure_ascii=False)
                assert len([r for r in sandbox_requests(lab) if r["path"].startswith("/v1/messages")]) == 2
                kept = json.dumps(
                    [*UsageRecord.objects.values(), *AuditEvent.objects.values("changes", "reason")], default=str
                )
                for text in (sent, kept):
                    assert name not in text
                    assert ticket not in text
                    assert not _leaks(text, *email[1])
                assert set(UsageRecord.objects.values_list("endpoint", "environment")) == {
                    ("classifier", "development"),
                    ("playground", "development"),
                }
            finally:
                transaction.set_rollback(True)

    check()
