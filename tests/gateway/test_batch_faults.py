"""A batch on a version whose output checks its spec refuses, and a batch whose collection fails: neither
is sent to be paid for and never collected, and neither holds up the other batches."""

from __future__ import annotations

import json

import httpx2
import pytest
from django.db import connection

from gateway.models import Batch
from gateway.tasks import batches_poll
from prompts.models import PromptVersion, content_hash
from tests.gateway.test_batches import create, items

pytestmark = pytest.mark.django_db


@pytest.fixture
def fast_batches(world):
    httpx2.post(f"{world['sandbox'].url}/_sandbox/config", json={"batch_seconds": 0}).raise_for_status()
    return world


# A schema the checks before the specs accepted (it is valid draft 2020-12) and the spec refuses.
DANGLING = {"json_schema": {"type": "object", "properties": {"a": {"$ref": "#/$defs/missing"}}}}


def _store_output_checks(version: PromptVersion, value: dict) -> None:
    with connection.cursor() as cursor:  # as stored before the spec, past the registry's checks
        cursor.execute(
            "UPDATE prompts_promptversion SET output_checks = %s, content_hash = %s WHERE id = %s",
            [json.dumps(value), content_hash({**version.content(), "output_checks": value}), version.pk],
        )


def test_a_batch_on_a_version_whose_output_checks_its_spec_refuses_is_refused_before_it_is_sent(
    fast_batches, django_capture_on_commit_callbacks
):
    world = fast_batches
    _store_output_checks(world["version"], DANGLING)

    with django_capture_on_commit_callbacks(execute=True):
        response = create(world, items(2))

    assert response.status_code == 500
    assert response.json()["title"] == "Prompt version setting unreadable"
    assert not Batch.objects.exists()


def test_a_batch_that_cannot_be_collected_does_not_hold_up_the_others(fast_batches, django_capture_on_commit_callbacks):
    world = fast_batches
    with django_capture_on_commit_callbacks(execute=True):
        older = create(world, items(1)).json()["id"]
        newer = create(world, items(1)).json()["id"]
    Batch.objects.filter(public_id=newer).update(mapping_ciphertext="not sealed")  # its collection fails

    with django_capture_on_commit_callbacks(execute=True):
        batches_poll()

    assert world["http"].get(f"/api/v1/batches/{older}").json()["status"] == "ended"
    assert Batch.objects.get(public_id=newer).status == "in_progress"
