"""A batch on a version whose output checks its spec refuses, and a batch whose collection fails: neither
is sent to be paid for and never collected, and neither holds up the other batches."""

from __future__ import annotations

import httpx2
import pytest

from gateway.models import Batch
from gateway.tasks import batches_poll
from tests.factories import DANGLING_CHECKS, setting_store_unchecked
from tests.gateway.test_batches import create, items

pytestmark = pytest.mark.django_db


@pytest.fixture
def fast_batches(world):
    httpx2.post(f"{world['sandbox'].url}/_sandbox/config", json={"batch_seconds": 0}).raise_for_status()
    return world


def test_a_batch_on_a_version_whose_output_checks_its_spec_refuses_is_refused_before_it_is_sent(
    fast_batches, django_capture_on_commit_callbacks
):
    world = fast_batches
    setting_store_unchecked(world["version"], "output_checks", DANGLING_CHECKS)

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
