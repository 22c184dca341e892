"""The playground: an author tries a draft with sample variables through the real pipeline, on the
development key and its caps, against the sandbox (the official SDK; its answer echoes the user message)."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from django.db import transaction
from django.template.defaultfilters import floatformat
from django.test import Client
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from audit.models import AuditEvent
from core.errors import InvalidVariables, RoleRequired
from evaluations.models import EvaluationCase
from evaluations.playground import playground_run
from evaluations.services import evaluation_case_save
from keys import services as key_services
from prompts import services
from tests.factories import version_content
from tests.gateway.test_pii_invariant import _leaks, pii
from tests.gateway.upstream import EMAIL, PHONE, inject, sandbox_requests
from usage.models import UsageRecord

pytestmark = pytest.mark.django_db

CONTENT = version_content(
    user_template="Summarise this ticket:\n{{ ticket }}\nCustomer: {{ customer_email }}\n"
    "Priority {{ priority }}, urgent {{ urgent }}, by {{ channel }}",
    variables=[
        {"name": "ticket", "type": "string", "required": True, "max_length": 5000},
        {"name": "customer_email", "type": "string", "required": True, "max_length": 200, "sensitive": True},
        {"name": "priority", "type": "integer", "required": False},
        {"name": "urgent", "type": "boolean", "required": False},
        {"name": "channel", "type": "enum", "choices": ["email", "phone"], "required": False},
    ],
    output_checks={"max_length": 2000, "required_patterns": ["refund"]},
)
FORM = {"ticket": f"The export button does nothing. Call me on {PHONE}.", "customer_email": EMAIL,
        "priority": "2", "urgent": "true", "channel": "phone"}  # fmt: skip


@pytest.fixture
def lab(sandbox, author, custodian, settings):
    """A draft of `support-summary`, a development key on the sandbox, and the author signed in."""
    settings.TOLLGATE_UPSTREAM_MAX_RETRIES = 0
    settings.TOLLGATE_PLAYGROUND_RUNS_PER_MINUTE = 10_000  # the rate limit has a test of its own
    prompt = services.prompt_create(actor=author, slug="support-summary", name="Support summary", purpose="x",
                                    owner=author)  # fmt: skip
    draft = services.prompt_version_create(actor=author, prompt=prompt, content=CONTENT, change_summary="v1")
    key = key_services.provider_key_create(
        actor=custodian, environment="development", label="sandbox-dev", secret="sk-ant-sandbox-test-key-0002",
        owner=custodian, base_url=sandbox.url, monthly_cap_usd=Decimal(100),
    )  # fmt: skip
    browser = Client()
    browser.force_login(author)
    return {"sandbox": sandbox, "prompt": prompt, "draft": draft, "key": key, "browser": browser,
            "url": f"/admin/playground/{draft.pk}/"}  # fmt: skip


def test_it_shows_a_form_made_from_the_variables_schema_prefilled_from_an_evaluation_case(lab, author):
    case = evaluation_case_save(
        actor=author, reason="sample",
        case=EvaluationCase(prompt=lab["prompt"], name="printer", expectations=[{"contains": "printer"}],
                            variables={"ticket": "The printer is on fire.", "customer_email": "a@b.example",
                                       "urgent": False, "gone": "a variable of an older version"}),
    )  # fmt: skip

    page = lab["browser"].get(lab["url"])

    assert page.status_code == 200
    form = page.context["form"]
    assert list(form.fields) == ["ticket", "customer_email", "priority", "urgent", "channel"]
    assert form.initial == {"ticket": "The printer is on fire.", "customer_email": "a@b.example", "urgent": "false"}
    assert f'href="?case={case.pk}"' in page.content.decode()
    assert not UsageRecord.objects.exists()


def test_a_run_is_one_ledger_row_on_the_development_key_and_shows_what_was_sent(lab, author):
    page = lab["browser"].post(lab["url"], FORM)

    assert page.status_code == 200, page.content
    row = UsageRecord.objects.get()
    assert (row.endpoint, row.environment, row.provider_key_id, row.outcome) == (
        "playground", "development", lab["key"].pk, "ok")  # fmt: skip
    assert (row.prompt_slug, row.prompt_version, row.api_client_id) == ("support-summary", 1, None)
    assert row.cost_usd > 0
    run = page.context["run"]
    assert run.ledger == row
    # What was sent: the redacted message, the e-mail (sensitive) and the phone number (detected) replaced.
    assert EMAIL not in run.user_message
    assert PHONE not in run.user_message
    assert "<CUSTOMER_EMAIL_1>" in run.user_message
    assert dict(run.replacements) == {"<CUSTOMER_EMAIL_1>": "CUSTOMER_EMAIL", "<PHONE_1>": "PHONE"}
    assert "<priority>\n2\n</priority>" in run.user_message
    assert "<urgent>\ntrue\n</urgent>" in run.user_message
    sent = json.dumps(sandbox_requests(lab), ensure_ascii=False)
    assert EMAIL not in sent
    assert "555 2671" not in sent
    assert "<CUSTOMER_EMAIL_1>" in sent
    # The answer rehydrated for the author; checks, tokens, cost and the ledger row on the page.
    assert EMAIL in run.output
    assert PHONE in run.output
    assert run.checks == {"passed": False, "failed": ["required_pattern:refund"]}
    html = page.content.decode()
    assert EMAIL in html  # the author's own values, back in the answer
    assert f"{row.input_tokens} in · {row.output_tokens} out" in html
    assert f'<td id="playground-cost">${floatformat(row.cost_usd, -6)}</td>' in html
    assert "required_pattern:refund" in html
    assert f"#{row.pk}" in html
    assert f"/admin/usage/usagerecord/{row.pk}/change/" not in html
    event = AuditEvent.objects.get(action="prompt_version.playground_run")
    assert (event.actor_id, event.object_id) == (author.pk, str(lab["draft"].pk))
    assert event.changes == {"environment": "development", "request_id": row.request_id, "outcome": "ok",
                             "cost_usd": str(row.cost_usd)}  # fmt: skip
    assert EMAIL not in json.dumps(event.changes)


def test_a_superuser_gets_the_link_to_the_ledger_row(lab, superuser):
    lab["browser"].force_login(superuser)

    page = lab["browser"].post(lab["url"], FORM)

    assert f"/admin/usage/usagerecord/{UsageRecord.objects.get().pk}/change/" in page.content.decode()


def test_a_cap_refuses_the_run_and_the_refusal_is_recorded(lab, custodian):
    key_services.provider_key_update(actor=custodian, key=lab["key"], reason="tight", monthly_cap_usd=Decimal("0.00"))

    page = lab["browser"].post(lab["url"], FORM)

    assert page.status_code == 402
    html = page.content.decode()
    assert "spend_cap_exceeded" in html
    assert "spend cap" in html
    row = UsageRecord.objects.get()
    assert (row.endpoint, row.outcome, row.environment, row.cost_usd) == (
        "playground", "cap_exceeded", "development", 0)  # fmt: skip
    assert sandbox_requests(lab) == []
    assert AuditEvent.objects.get(action="prompt_version.playground_run").changes["outcome"] == "cap_exceeded"


def test_an_upstream_failure_is_shown_and_recorded(lab):
    inject(lab, status=500, count=1)

    page = lab["browser"].post(lab["url"], FORM)

    assert page.status_code == 502
    assert "upstream_error" in page.content.decode()
    assert UsageRecord.objects.get().outcome == "server_error"


@pytest.mark.parametrize(
    ("change", "errors"),
    [
        ({"ticket": ""}, {"ticket": ["This field is required."]}),
        ({"ticket": "x" * 5001}, {"ticket": ["is longer than 5000 characters"]}),
        ({"priority": "two"}, {"priority": ["Enter a whole number."]}),
        ({"channel": "fax"}, {"channel": ["Select a valid choice. fax is not one of the available choices."]}),
        ({"customer_email": "x\x00y"}, {"customer_email": ["Null characters are not allowed."]}),
    ],
)
def test_invalid_variables_are_shown_on_the_form_and_nothing_is_called(lab, change, errors):
    page = lab["browser"].post(lab["url"], {**FORM, **change})

    assert page.status_code == 400
    assert page.context["form"].errors == errors
    assert "run" not in page.context
    assert not UsageRecord.objects.exists()
    assert sandbox_requests(lab) == []
    assert not AuditEvent.objects.filter(action="prompt_version.playground_run").exists()


@pytest.mark.parametrize("persona", ["approver", "custodian", "auditor", "outsider"])
def test_a_person_without_the_permission_is_refused(lab, persona, request):
    lab["browser"].force_login(request.getfixturevalue(persona))

    assert lab["browser"].get(lab["url"]).status_code == 403
    assert lab["browser"].post(lab["url"], FORM).status_code == 403
    assert not UsageRecord.objects.exists()
    with pytest.raises(RoleRequired):
        playground_run(actor=request.getfixturevalue(persona), version=lab["draft"], variables={})


def test_a_session_not_yet_verified_is_sent_to_the_second_factor(lab, superuser):
    lab["browser"].force_login(superuser, verified=False)  # a superuser must use a second factor

    page = lab["browser"].post(lab["url"], FORM)

    assert page.status_code == 302
    assert page["Location"].startswith("/admin/mfa/")
    assert not UsageRecord.objects.exists()


def test_an_author_may_try_a_version_in_review_but_not_a_decided_one(lab, author, approver):
    submitted = services.prompt_version_submit(actor=author, version=lab["draft"])
    assert lab["browser"].post(lab["url"], FORM).status_code == 200
    services.prompt_version_approve(actor=approver, version=submitted, note="ok")

    for method in ("get", "post"):
        page = getattr(lab["browser"], method)(lab["url"], FORM if method == "post" else None)
        assert page.status_code == 409
        assert "the playground tries drafts and versions in review only" in page.content.decode()
    assert UsageRecord.objects.filter(endpoint="playground").count() == 1  # (the approval counted its prompt)


def test_a_version_released_to_production_still_runs_on_the_development_key(lab, author, approver, custodian):
    """There is no such thing as a playground call on a production key: a decided version is refused, and
    whatever runs, runs on development's key."""
    key_services.provider_key_create(
        actor=custodian, environment="production", label="prod", secret="sk-ant-sandbox-test-key-0009",
        owner=custodian, base_url=lab["sandbox"].url, monthly_cap_usd=Decimal(100),
    )  # fmt: skip
    second = services.prompt_version_create(actor=author, prompt=lab["prompt"], content=CONTENT,
                                            change_summary="v2")  # fmt: skip

    page = lab["browser"].post(f"/admin/playground/{second.pk}/", FORM)

    assert page.status_code == 200
    assert set(UsageRecord.objects.values_list("environment", "provider_key_id")) == {("development", lab["key"].pk)}


def test_runs_are_limited_per_person_and_minute(lab, settings, one_rate_window):
    settings.TOLLGATE_PLAYGROUND_RUNS_PER_MINUTE = 2

    statuses = [lab["browser"].post(lab["url"], FORM).status_code for _ in range(3)]

    assert statuses == [200, 200, 429]
    assert UsageRecord.objects.count() == 2
    refused = lab["browser"].post(lab["url"], FORM)
    assert "playground runs this minute" in refused.content.decode()
    assert int(refused["Retry-After"]) >= 1


def test_without_a_development_key_nothing_is_reserved(lab, custodian):
    key_services.provider_key_revoke(actor=custodian, key=lab["key"], reason="gone")

    page = lab["browser"].post(lab["url"], FORM)

    assert page.status_code == 502
    assert "No active provider key is configured for development" in page.content.decode()
    assert not UsageRecord.objects.exists()


# --- generated input --------------------------------------------------------------------------------------

# (value, the personal data in it as tests/gateway/test_pii_invariant.py's `_leaks` takes it, or None)
planted = st.builds(lambda found, before: (before + found[0], found), pii, st.sampled_from(["", "Call me: ", "ref="]))
plain = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", "true", "false", "2", "-1", "1e3", "nan", "email", "x" * 6000, "y" * 300_000]),
).map(lambda text: (text, None))
tagged_text = st.one_of(planted, planted, plain)  # mostly personal data


def _never_sent(lab, *tagged) -> None:
    sent = json.dumps(sandbox_requests(lab), ensure_ascii=False)
    for _, found in tagged:
        if found is not None:
            assert not _leaks(sent, *found), f"{found[0]!r} reached the upstream"


def _examples():
    return hypothesis_settings(
        max_examples=40,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        derandomize=True,
    )


def test_generated_form_input_never_fails_never_leaks_and_makes_at_most_one_row(lab):
    @_examples()
    @given(
        ticket=tagged_text,
        email=tagged_text,
        priority=st.sampled_from(["", "", "", "2", "-1", "99999999999", "two", "1.5"]),
        urgent=st.sampled_from(["", "", "true", "false", "yes"]),
        channel=st.sampled_from(["", "", "", "email", "phone", "fax", "x" * 6000]),
    )
    def check(ticket, email, priority, urgent, channel):
        lab["sandbox"].call(lambda state: state.reset())
        submitted = {"ticket": ticket[0], "customer_email": email[0], "priority": priority, "urgent": urgent,
                     "channel": channel}  # fmt: skip
        with transaction.atomic():
            try:
                page = lab["browser"].post(lab["url"], submitted)
                assert page.status_code in (200, 400, 413), page.status_code  # 413: over the request size
                rows = UsageRecord.objects.count()
                assert rows == (1 if page.status_code == 200 else 0)
                _never_sent(lab, ticket, email)
            finally:
                transaction.set_rollback(True)

    check()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | plain.map(lambda pair: pair[0]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=5,
)
tagged_any = st.one_of(planted, planted, planted, json_values.map(lambda value: (value, None)))
# Mostly values of the declared types, and the others of any type.
optional_values = st.fixed_dictionaries(
    {},
    optional={"priority": st.integers() | st.integers() | json_values, "urgent": st.booleans() | json_values,
              "channel": st.sampled_from(["email", "phone"]) | json_values, "unknown": json_values},
)  # fmt: skip


def test_generated_variables_of_any_type_are_refused_or_run_never_anything_else(lab, author):
    @_examples()
    @given(
        ticket=tagged_any,
        email=tagged_any,
        others=optional_values,
        whole=st.one_of(st.none(), st.none(), st.none(), json_values),  # mostly None: the variables are a dict
    )
    def check(ticket, email, others, whole):
        lab["sandbox"].call(lambda state: state.reset())
        variables = {"ticket": ticket[0], "customer_email": email[0], **others} if whole is None else whole
        with transaction.atomic():
            try:
                try:
                    run = playground_run(actor=author, version=lab["draft"], variables=variables)
                except InvalidVariables:  # any other error fails the example
                    assert not UsageRecord.objects.exists()
                    return
                assert UsageRecord.objects.count() == 1
                assert run.ledger is not None
                assert run.error is None
                _never_sent(lab, ticket, email)
            finally:
                transaction.set_rollback(True)

    check()
