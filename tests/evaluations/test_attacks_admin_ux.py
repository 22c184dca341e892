"""A hostile review of the admin pages of issue 19 (the cost of a change, the playground): each test is an
attack that once worked, written so that it fails if the mechanism that stops it is taken away."""

from __future__ import annotations

import pytest
from django.test import Client

from evaluations.models import SystemPromptCount
from tests.evaluations.test_cost_of_change import count_requests, dev_key, in_review  # noqa: F401
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
