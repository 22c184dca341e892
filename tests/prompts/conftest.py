from __future__ import annotations

import pytest

from prompts import services
from tests.factories import version_content


@pytest.fixture
def prompt(author):
    return services.prompt_create(
        actor=author,
        slug="support-summary",
        name="Support ticket summary",
        purpose="Summaries for the support queue",
        owner=author,
        data_categories=["personal"],
    )


@pytest.fixture
def draft(prompt, author):
    return services.prompt_version_create(
        actor=author, prompt=prompt, content=version_content(), change_summary="First version"
    )


@pytest.fixture
def in_review(draft, author):
    return services.prompt_version_submit(actor=author, version=draft)


@pytest.fixture
def approved(in_review, approver):
    return services.prompt_version_approve(actor=approver, version=in_review, note="Reviewed wording and schema")
