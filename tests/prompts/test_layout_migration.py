"""A database written before the gateway and evaluations apps existed (their models were the prompts app's)
migrates to today's layout with nothing copied: every row reads back through the new models, and the
moved models' permissions — with the roles that hold them — keep their rows."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from core.context import access_change
from evaluations.models import EvaluationCase, EvaluationRun
from gateway.models import Batch, BatchItem, Job, Run, WebhookDelivery

BEFORE = [("prompts", "0003_evaluation_suites"), ("gateway", None), ("evaluations", None)]
MOVED = {
    "gateway": ["run", "job", "batch", "batchitem", "webhookdelivery"],
    "evaluations": ["evaluationcase", "evaluationrun", "historicalevaluationcase"],
}


def _migrate(targets: list[tuple[str, str | None]]) -> MigrationExecutor:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return MigrationExecutor(connection)


def _latest() -> list[tuple[str, str | None]]:
    executor = MigrationExecutor(connection)
    return [key for key in executor.loader.graph.leaf_nodes() if key[0] in ("prompts", "gateway", "evaluations")]


@pytest.mark.django_db(transaction=True)
def test_rows_written_by_the_prompts_app_read_back_through_the_new_apps(world, author):
    latest = _latest()
    # Today's content types as an old database had them: under the prompts app, granted to a role.
    old_types = {}
    for app, models in MOVED.items():
        for model in models:
            content_type = ContentType.objects.get(app_label=app, model=model)
            old_types[model] = content_type.pk
    with access_change(actor_repr="test"):
        group = Group.objects.create(name="Incident responders")
        group.permissions.add(Permission.objects.get(content_type__app_label="gateway", codename="view_run"))

    old_apps = _migrate(BEFORE).loader.project_state(BEFORE[:1]).apps
    assert ContentType.objects.filter(pk__in=old_types.values(), app_label="prompts").count() == len(old_types)
    # New code that served a request before `migrate` ran may have made an empty content type under the new
    # label: it gives way to the one that holds the permissions.
    ContentType.objects.create(app_label="gateway", model="job")

    now = timezone.now()
    version = world["version"]
    client = world["client"]
    common = {"api_client_id": client.pk, "environment": "production", "prompt_id": version.prompt_id,
              "version_id": version.pk}  # fmt: skip
    old = {name: old_apps.get_model("prompts", name) for name in
           ("Run", "Job", "Batch", "BatchItem", "WebhookDelivery", "EvaluationCase", "EvaluationRun")}  # fmt: skip
    old["Run"].objects.create(public_id="run_old", request_id="req_old", endpoint="run", succeeded=True,
                              result={"id": "run_old"}, output_redacted="[EMAIL_1]", bodies_expire_at=now,
                              **common)  # fmt: skip
    job = old["Job"].objects.create(public_id="job_old", status="succeeded", variables_redacted={"ticket": "x"},
                                    mapping_expires_at=now + timedelta(days=1), **common)  # fmt: skip
    batch = old["Batch"].objects.create(public_id="batch_old", provider_key_id=world["key"].pk, request_id="req_b",
                                        provider_batch_ids=["msgbatch_1"], **common)  # fmt: skip
    old["BatchItem"].objects.create(batch=batch, custom_id="a-1", status="succeeded", request_redacted=[])
    old["WebhookDelivery"].objects.create(job=job, url="https://example.com/hook", attempt=1, status_code=200,
                                          delivered=True)  # fmt: skip
    case = old["EvaluationCase"].objects.create(prompt_id=version.prompt_id, name="old case", variables={},
                                                expectations=[{"contains": "x"}], created_by_id=author.pk)  # fmt: skip
    old["EvaluationRun"].objects.create(version_id=version.pk, content_hash=version.content_hash, trigger="manual",
                                        status="passed", environment="production", cases_total=1, cases_passed=1,
                                        pass_rate=1.0)  # fmt: skip

    _migrate(latest)

    assert Run.objects.get(public_id="run_old").output_redacted == "[EMAIL_1]"
    assert Job.objects.get(public_id="job_old").variables_redacted == {"ticket": "x"}
    assert Batch.objects.get(public_id="batch_old").provider_batch_ids == ["msgbatch_1"]
    assert BatchItem.objects.get(custom_id="a-1").batch.public_id == "batch_old"
    assert WebhookDelivery.objects.get(url="https://example.com/hook").job.public_id == "job_old"
    assert EvaluationCase.objects.get(pk=case.pk).expectations == [{"contains": "x"}]
    assert EvaluationRun.objects.get(version=version).pass_rate == 1.0
    for app, models in MOVED.items():
        for model in models:
            assert ContentType.objects.get(pk=old_types[model]).app_label == app
    assert group.permissions.filter(content_type__app_label="gateway", codename="view_run").exists()
    assert ContentType.objects.filter(app_label="gateway", model="job").count() == 1


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("/admin/prompts/job/?status=queued", "/admin/gateway/job/?status=queued"),
        ("/admin/prompts/run/7/change/", "/admin/gateway/run/7/change/"),
        ("/admin/prompts/evaluationcase/add/", "/admin/evaluations/evaluationcase/add/"),
        ("/admin/prompts/evaluationrun/", "/admin/evaluations/evaluationrun/"),
    ],
)
def test_admin_pages_that_moved_app_are_redirected_from_their_old_address(client, old, new):
    response = client.get(old)
    assert response.status_code == 301
    assert response["Location"] == new
