"""A hostile review of a prompt's page and its comparison of versions (issue 19): each test is an attack
that once worked, written so that it fails if the mechanism that stops it is taken away."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from core.context import access_change
from prompts import services
from tests.factories import UserFactory, version_content

pytestmark = pytest.mark.django_db

SECRET_RULE = "Internal rule 7: refunds above 500 EUR go to the fraud desk."


@pytest.fixture
def two_versions(prompt, author):
    v1 = services.prompt_version_create(actor=author, prompt=prompt, content=version_content(), change_summary="v1")
    v2 = services.prompt_version_create(
        actor=author, prompt=prompt, content=version_content(system_prompt=SECRET_RULE), change_summary="v2"
    )
    return v1, v2


def _reader_of_prompts_only():
    """Staff who may view prompts (their names and purposes) but not their versions' content."""
    user = UserFactory(username="frank-prompts-only")
    with access_change(actor_repr="test"):
        user.user_permissions.add(Permission.objects.get(content_type__app_label="prompts", codename="view_prompt"))
    return user


def test_comparing_versions_needs_the_permission_to_view_versions(prompt, two_versions):
    """The comparison prints the versions' content, which the version pages refuse to a person who may not
    view versions: the comparison must refuse it too."""
    v1, v2 = two_versions
    browser = Client()
    browser.force_login(_reader_of_prompts_only())
    assert browser.get(f"/admin/prompts/promptversion/{v2.pk}/change/").status_code == 403

    page = browser.get(f"/admin/prompts/prompt/{prompt.pk}/compare/?a={v1.pk}&b={v2.pk}")

    assert page.status_code == 403
    assert SECRET_RULE not in page.content.decode()
    prompt_page = browser.get(f"/admin/prompts/prompt/{prompt.pk}/change/").content.decode()
    assert 'id="compare-link"' not in prompt_page  # nor offered a comparison it would be refused
    assert 'id="compare-form"' not in prompt_page


def test_a_reader_of_versions_still_compares_them(prompt, two_versions, auditor):
    v1, v2 = two_versions
    browser = Client()
    browser.force_login(auditor)

    page = browser.get(f"/admin/prompts/prompt/{prompt.pk}/compare/?a={v1.pk}&b={v2.pk}")

    assert page.status_code == 200
    assert SECRET_RULE in page.content.decode()


@pytest.mark.parametrize(
    "path",
    [
        "/admin/playground/{huge}/",
        "/admin/prompts/prompt/{huge}/compare/",
        "/admin/prompts/prompt/{huge}/change/",
        "/admin/prompts/promptversion/{huge}/change/",
        "/admin/prompts/promptversion/{huge}/do/approve/",
        "/admin/prompts/prompt/{prompt}/compare/?a={huge}&b=-{huge}",
    ],
)
def test_ids_out_of_any_integer_range_are_not_found_never_a_server_error(prompt, superuser, path):
    browser = Client()
    browser.force_login(superuser)

    answer = browser.get(path.format(huge=10**30, prompt=prompt.pk))

    assert answer.status_code in (302, 400, 404)
