"""Evaluation suites: cases with expectations, runs through the pipeline against the sandbox's
deterministic answer (an echo of the user message), drift alerts, the weekly schedule and the approval
gate."""

from __future__ import annotations

import pytest
from django.core import mail
from django.db import connection

from audit.models import AuditEvent
from core.errors import EvaluationRequired, IllegalTransition, InvalidEvaluationCase, NoEvaluationCases
from evaluations.models import EvaluationCase, EvaluationRun
from evaluations.services import (
    evaluation_case_save,
    evaluation_start,
    evaluations_schedule,
    expectations_errors,
)
from gateway.checks import expectation_failures, similarity
from prompts import services
from tests.factories import version_content
from tests.gateway.upstream import EMAIL, inject, sandbox_requests
from usage.models import MonitorAlert, UsageRecord

pytestmark = pytest.mark.django_db


@pytest.fixture
def evaluate(django_capture_on_commit_callbacks):
    """Start an evaluation and run its job in-process (the embedded default), as the commit would."""

    def start(actor, version, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            run = evaluation_start(actor=actor, version=version, **kwargs)
        run.refresh_from_db()
        return run

    return start


def test_expectations_are_checked_when_a_case_is_saved(world, author):
    errors = expectations_errors(
        [
            {"contains": ""},
            {"regex": "("},
            {"json_schema": {"type": "nonsense"}},
            {"similar_to": "x", "threshold": 2},
            {"contains": "a", "regex": "b"},
            {"contains": "a", "typo": 1},
        ]
    )

    assert [error.split(":")[0] for error in errors] == [f"Expectation {n}" for n in range(1, 7)]
    assert expectations_errors([]) == ["Give a list of at least one expectation."]
    with pytest.raises(InvalidEvaluationCase) as refused:
        evaluation_case_save(
            actor=author,
            case=EvaluationCase(prompt=world["prompt"], name="x", variables=[], expectations=[{"regex": "("}]),
            reason="r",
        )
    assert set(refused.value.errors) == {"variables", "expectations"}
    assert not EvaluationCase.objects.exists()


def test_each_kind_of_expectation_judges_the_answer():
    answer = '{"summary": "printer on fire", "priority": 1}'

    assert expectation_failures([{"contains": "printer"}, {"regex": r"prio\w+"}], answer) == []
    assert expectation_failures([{"contains": "refund"}, {"regex": r"^\d+$"}], answer) == [
        'contains "refund"',
        r"regex ^\d+$",
    ]
    schema = {"type": "object", "required": ["summary", "priority"], "properties": {"priority": {"type": "string"}}}
    assert expectation_failures([{"json_schema": schema}], answer) == ["json_schema: $.priority fails 'type'"]
    assert expectation_failures([{"json_schema": schema}], "not json") == ["json_schema: the answer is not JSON"]
    assert expectation_failures([{"json_schema": {"type": "object"}}], answer) == []
    assert similarity("The printer is on fire!", "the printer is on fire") == 1.0
    assert expectation_failures([{"similar_to": "the printer is on fire", "threshold": 0.5}], "printer on fire") == []
    assert expectation_failures([{"similar_to": "an unrelated sentence about billing"}], answer) == [
        "similar_to: 0.00 below 0.8"
    ]


def test_an_evaluation_runs_each_case_through_the_pipeline_and_keeps_each_result(suite, author, evaluate):
    run = evaluate(author, suite["version"])

    assert (run.status, run.cases_total, run.cases_passed, run.pass_rate) == ("failed", 2, 1, 0.5)
    assert run.environment == "development"
    assert run.content_hash == suite["version"].content_hash
    results = {result["name"]: result for result in run.results}
    assert results["export button"]["passed"]
    assert results["export button"]["failures"] == []
    assert results["mentions a refund"]["failures"] == ['contains "refund"']
    # The answer is kept as it was sent and answered: placeholders, not the customer's address.
    assert "<CUSTOMER_EMAIL_1>" in results["export button"]["output"]
    assert EMAIL not in str(run.results)
    assert all(EMAIL not in str(request) for request in sandbox_requests(suite))
    ledger = UsageRecord.objects.filter(endpoint="evaluation")
    assert ledger.count() == 2
    assert {row.environment for row in ledger} == {"development"}
    assert {row.outcome for row in ledger} == {"ok"}


def test_a_case_whose_call_fails_fails_with_the_error_code(suite, author, evaluate):
    inject(suite, status=500, count=6)  # both cases, each with its two retries

    run = evaluate(author, suite["version"])

    assert run.pass_rate == 0.0
    assert {result["error"] for result in run.results} == {"upstream_error"}
    assert set(UsageRecord.objects.filter(endpoint="evaluation").values_list("outcome", flat=True)) == {"server_error"}


def test_a_drop_in_pass_rate_raises_one_drift_alert(suite, author, evaluate, approver, settings):
    suite["bad"].active = False
    evaluation_case_save(actor=author, case=suite["bad"], reason="refunds are out of scope")
    first = evaluate(author, suite["version"])
    assert first.status == "passed"
    assert not MonitorAlert.objects.exists()

    inject(suite, status=500, count=3)  # the next call fails after its retries
    evaluate(author, suite["version"])
    inject(suite, status=500, count=3)
    evaluate(author, suite["version"])

    alert = MonitorAlert.objects.get()
    assert alert.kind == "quality_drift"
    assert alert.subject == "support-summary v1"
    assert (alert.value, alert.threshold) == (0.0, 1.0)
    assert "fell from 100% to 0%" in alert.message
    assert [message.subject for message in mail.outbox] == ["[Tollgate] Quality drift: support-summary v1"]
    assert AuditEvent.objects.filter(action="monitor_alert.raise").count() == 1


def test_the_weekly_evaluation_covers_versions_live_in_production(suite, author, django_capture_on_commit_callbacks):
    other = services.prompt_create(actor=author, slug="no-suite", name="No suite", purpose="x", owner=author)
    assert other.evaluation_cases.count() == 0

    with django_capture_on_commit_callbacks(execute=True):
        runs = evaluations_schedule()

    assert [(run.version_id, run.trigger, run.requested_by) for run in runs] == [
        (suite["version"].pk, "scheduled", None)
    ]
    assert EvaluationRun.objects.get().status == "failed"  # ran in-process (the embedded default)


def test_only_frozen_versions_with_cases_are_evaluated(suite, author, outsider):
    draft = services.prompt_version_new_draft(actor=author, source=suite["version"])
    with pytest.raises(IllegalTransition):
        evaluation_start(actor=author, version=draft)
    with pytest.raises(services.RoleRequired):
        evaluation_start(actor=outsider, version=suite["version"])
    EvaluationCase.objects.update(active=False)
    with pytest.raises(NoEvaluationCases):
        evaluation_start(actor=author, version=suite["version"])


def test_approval_can_require_a_passing_evaluation(suite, author, evaluate, approver, settings):
    settings.TOLLGATE_APPROVAL_REQUIRES_EVALUATION = True
    version = services.prompt_version_create(
        actor=author, prompt=suite["prompt"], content=version_content(max_tokens=300), change_summary="v2"
    )
    services.prompt_version_submit(actor=author, version=version)
    with pytest.raises(EvaluationRequired, match="no finished evaluation"):
        services.prompt_version_approve(actor=approver, version=version, note="ok")

    evaluate(author, version)  # one of two cases fails
    with pytest.raises(EvaluationRequired, match="latest evaluation failed"):
        services.prompt_version_approve(actor=approver, version=version, note="ok")

    suite["bad"].expectations = [{"contains": "export"}]
    evaluation_case_save(actor=author, case=suite["bad"], reason="fixed the expectation")
    evaluate(approver, version)
    approved = services.prompt_version_approve(actor=approver, version=version, note="evaluated")
    assert approved.status == "approved"


def test_case_changes_are_audited_without_the_case_data(suite, author):
    events = AuditEvent.objects.filter(object_type="evaluations.evaluationcase").order_by("sequence")

    assert [event.action for event in events] == ["evaluation_case.create"] * 2
    assert EMAIL not in str([event.changes for event in events])
    assert events[0].changes["variables"][1].startswith("sha256:")
    assert suite["good"].history.first().history_change_reason == "regression suite"


def test_a_reviewer_runs_an_evaluation_from_the_version_page_and_sees_it_on_the_approval_screen(
    suite, client, approver, auditor, django_capture_on_commit_callbacks
):
    version = suite["version"]
    client.force_login(approver)
    page = client.get(f"/admin/prompts/promptversion/{version.pk}/change/").content.decode()
    assert 'id="action-evaluate"' in page
    assert "Latest evaluation" in page
    assert "none yet" in page

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/admin/prompts/promptversion/{version.pk}/do/evaluate/", {"reason": ""})

    assert response.status_code == 302
    run = EvaluationRun.objects.get()
    assert (run.status, run.requested_by, run.trigger) == ("failed", approver, "manual")
    page = client.get(f"/admin/prompts/promptversion/{version.pk}/change/").content.decode()
    assert 'id="evaluation-status">Failed' in page
    assert "1 of 2 cases passed" in page
    client.force_login(auditor)  # auditors read results and change nothing
    detail = client.get(f"/admin/evaluations/evaluationrun/{run.pk}/change/").content.decode()
    assert 'id="evaluation-results"' in detail
    assert "contains &quot;refund&quot;" in detail
    assert EMAIL not in detail
    assert client.post(f"/admin/prompts/promptversion/{version.pk}/do/evaluate/").status_code == 403
    assert EvaluationRun.objects.count() == 1


def test_a_case_with_bad_expectations_is_refused_in_the_admin(world, client, author):
    client.force_login(author)
    response = client.post(
        "/admin/evaluations/evaluationcase/add/",
        {"prompt": world["prompt"].pk, "name": "broken", "variables": "{}", "expectations": '[{"regex": "("}]',
         "reason": "try"},
    )  # fmt: skip

    assert response.status_code == 200
    assert "the pattern does not compile" in response.content.decode()
    assert not EvaluationCase.objects.exists()


def test_metrics_expose_the_latest_pass_rate_of_each_live_version(suite, author, evaluate, client):
    evaluate(author, suite["version"])

    metrics = client.get("/metrics", REMOTE_ADDR="127.0.0.1").content.decode()

    assert 'tollgate_evaluation_pass_rate{prompt="support-summary",version="1"} 0.5' in metrics


def test_a_run_that_breaks_ends_failed_with_a_reason(suite, author, evaluate, monkeypatch):
    def broken(expectations, answer):
        raise ValueError("unexpected")

    monkeypatch.setattr("evaluations.runner.expectation_failures", broken)

    run = evaluate(author, suite["version"])

    assert run.status == "failed"
    assert run.error.startswith("The evaluation stopped on an unexpected error")
    assert run.finished_at is not None


def test_a_tampered_version_is_not_evaluated(suite, author, evaluate):
    with connection.cursor() as cursor:  # edited in the database, past the application
        cursor.execute(
            "UPDATE prompts_promptversion SET system_prompt = 'tampered' WHERE id = %s", [suite["version"].pk]
        )

    run = evaluate(author, suite["version"])

    assert run.status == "failed"
    assert "does not match its recorded content hash" in run.error
    assert run.results == []
