"""A version's routing, output checks and extra redaction are each described once, by a spec: it refuses
what the pipeline cannot run with a sentence naming the place, writes the admin's help, and is what the
pipeline reads."""

from __future__ import annotations

import io
import json
import zipfile

import pytest
from django.utils import timezone

from audit.evidence import Period, evidence_export
from core.errors import InvalidVersion, UnreadableSetting
from evaluations.services import expectations_errors
from gateway.checks import expectation_failures, output_checks_run
from prompts import services
from prompts.models import PromptVersion
from prompts.spec_fields import SpecFormField
from prompts.specs import (
    OutputChecksSpec,
    RedactionSpec,
    RoutingSpec,
    json_schema_problem,
    output_checks_of,
    redaction_of,
    routing_of,
    spec_errors,
)
from tests.factories import setting_store_unchecked, version_content

# --- what each spec refuses, and how it says so ----------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "errors"),
    [
        ([], ["must be an object"]),
        ({"rule": []}, ["unknown key 'rule'"]),
        ({"rules": {}}, ["rules: must be a list"]),
        (
            {"rules": [{"max_input_tokens": -1, "model": "x"}]},
            ["rules[0].max_input_tokens: must be a positive integer"],
        ),
        ({"rules": [{"max_input_tokens": "500", "model": "x"}]}, ["rules[0].max_input_tokens: must be an integer"]),
        ({"rules": [{"max_input_tokens": True, "model": "x"}]}, ["rules[0].max_input_tokens: must be an integer"]),
        ({"rules": [{"max_input_tokens": 500.0, "model": "x"}]}, ["rules[0].max_input_tokens: must be an integer"]),
        ({"rules": [{"model": "x"}]}, ["rules[0]: 'max_input_tokens' is required"]),
        ({"rules": [{"max_input_tokens": 1, "model": ""}]}, ["rules[0].model: must not be empty"]),
        ({"classifier": {"prompt": "tier", "routes": {}}}, ["classifier.routes: must not be empty"]),
        ({"classifier": {"prompt": "tier", "routes": {"a b": 1}}}, ['classifier.routes["a b"]: must be text']),
        ({"classifier": {"prompt": "tier", "routes": {"a": "m"}, "model": "x"}}, ["classifier: unknown key 'model'"]),
    ],
)
def test_the_routing_spec_says_what_is_wrong_and_where(value, errors):
    assert spec_errors(RoutingSpec, value) == errors


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ({"required_patterns": "abc"}, "required_patterns: must be a list"),
        ({"required_patterns": ["("]}, "required_patterns[0]: '(' is not a valid regular expression: missing )"),
        ({"json_schema": {"type": "nope"}}, "json_schema: is not a valid JSON Schema: 'nope' is not valid"),
        ({"json_schema": 5}, "json_schema: is not a valid JSON Schema: 5 is not of type 'object', 'boolean'"),
        (
            {"json_schema": {"$ref": "#/$defs/gone"}},
            "json_schema: is not a usable JSON Schema: its $ref '#/$defs/gone' ",
        ),
        (
            {"json_schema": {"$ref": "https://schemas.example/answer"}},
            "json_schema: is not a usable JSON Schema: its $ref",
        ),
        ({"json_schema": {"$ref": "#"}}, "json_schema: is not a usable JSON Schema: it refers to itself in a loop"),
        ({"json_schema": {"properties": {"a": {"anyOf": [{"$ref": "#/properties/a"}]}}}}, "it refers to itself"),
        ({"max_length": 0}, "max_length: must be a positive integer"),
        ({"max_length": "2000"}, "max_length: must be an integer"),
    ],
)
def test_the_output_checks_spec_says_what_is_wrong_and_where(value, error):
    (message,) = spec_errors(OutputChecksSpec, value)

    assert message.startswith(error) or error in message


def test_a_schema_that_recurses_into_the_answer_is_usable():
    tree = {"type": "object", "properties": {"children": {"type": "array", "items": {"$ref": "#"}}}}

    assert spec_errors(OutputChecksSpec, {"json_schema": tree, "max_length": 10}) == []
    assert spec_errors(OutputChecksSpec, {"json_schema": True, "required_patterns": [], "max_length": None}) == []


@pytest.mark.parametrize(
    ("value", "errors"),
    [
        # A string used to be read letter by letter: "Falcon" redacted every f, a, l, c, o and n.
        ({"terms": "Falcon"}, ["terms: must be a list"]),
        ({"terms": None}, ["terms: must be a list"]),
        ({"terms": [" "]}, ["terms[0]: must not be blank"]),
        ({"patterns": [3]}, ["patterns[0]: must be text"]),
        ({"words": []}, ["unknown key 'words'"]),
        ({"terms": {1, 2}}, ["must be JSON"]),
    ],
)
def test_the_redaction_spec_says_what_is_wrong_and_where(value, errors):
    assert spec_errors(RedactionSpec, value) == errors


@pytest.mark.django_db
def test_a_version_is_refused_by_field_with_the_specs_sentences(prompt, author):
    content = version_content(
        routing={"rules": [{"max_input_tokens": 0, "model": "claude-haiku-4-5"}]},
        output_checks={"required_patterns": ["("]},
        redaction={"terms": "Falcon"},
    )

    with pytest.raises(InvalidVersion) as refused:
        services.prompt_version_create(actor=author, prompt=prompt, content=content, change_summary="x")

    assert refused.value.errors["routing"] == ["rules[0].max_input_tokens: must be a positive integer"]
    assert refused.value.errors["output_checks"][0].startswith("required_patterns[0]: '(' is not a valid")
    assert refused.value.errors["redaction"] == ["terms: must be a list"]
    assert not PromptVersion.objects.exists()


# --- what the pipeline reads -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_pipeline_reads_typed_settings_and_the_stored_json_is_left_as_written(draft):
    stored = PromptVersion.objects.get(pk=draft.pk)

    routing = routing_of(stored)
    assert [(rule.max_input_tokens, rule.model) for rule in routing.rules] == [(500, "claude-haiku-4-5")]
    assert routing.classifier is None
    assert output_checks_of(stored).max_length == 2000
    assert redaction_of(stored) == RedactionSpec()
    assert (stored.routing, stored.output_checks, stored.redaction) == (
        {"rules": [{"max_input_tokens": 500, "model": "claude-haiku-4-5"}]},
        {"max_length": 2000},
        {},
    )


def test_output_checks_and_expectations_judge_an_answer_alike():
    answer = '{"summary": "printer on fire", "priority": 1}'
    schema = {"type": "object", "properties": {"priority": {"type": "string"}}}
    checks = OutputChecksSpec(required_patterns=[r"^\d+$", "printer"], json_schema=schema, max_length=10)

    assert output_checks_run(checks, answer) == {
        "passed": False,
        "failed": [r"required_pattern:^\d+$", "max_length", "json_schema"],
    }
    assert expectation_failures([{"regex": r"^\d+$"}, {"regex": "printer"}, {"json_schema": schema}], answer) == [
        r"regex ^\d+$",
        "json_schema: $.priority fails 'type'",
    ]
    assert output_checks_run(OutputChecksSpec(json_schema=schema), "plain") == {
        "passed": False,
        "failed": ["json_schema:not_json"],
    }
    assert expectation_failures([{"json_schema": schema}], "plain") == ["json_schema: the answer is not JSON"]


def test_an_expectation_with_an_unusable_schema_is_refused_like_an_output_check():
    assert expectations_errors([{"json_schema": {"$ref": "#"}}]) == [
        f"Expectation 1: {json_schema_problem({'$ref': '#'})}."
    ]


@pytest.mark.django_db
def test_a_stored_setting_its_spec_refuses_stops_the_run_without_telling_its_value(world, caplog):
    """A redaction saved before the spec was strict ("terms" as one string, once read letter by letter):
    the run answers 500 and neither the answer nor the log holds the term."""
    version = world["version"]
    setting_store_unchecked(version, "redaction", {"terms": "Falcon"})

    response = world["http"].post(
        "/api/v1/prompts/support-summary/run",
        {"variables": {"ticket": "Falcon is down", "customer_email": "jane@example.com"}},
        format="json",
    )

    assert response.status_code == 500
    assert response.json()["code"] == "internal_error"
    assert "redaction" in response.json()["detail"]
    assert "Falcon" not in response.content.decode() + caplog.text
    with pytest.raises(UnreadableSetting):
        redaction_of(PromptVersion.objects.get(pk=version.pk))


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("field", "value"),
    [
        # Both passed the checks a version was saved under before the specs; both are refused now.
        ("routing", {"classifier": {"prompt": "triage", "routes": {"urgent": "claude-haiku-4-5"}, "note": "x"}}),
        ("redaction", {"terms": "Falcon"}),
    ],
)
def test_a_live_version_its_spec_refuses_is_named_in_the_data_flow_evidence_not_a_failed_export(world, field, value):
    version = world["version"]
    setting_store_unchecked(version, field, value)
    today = Period(timezone.now().date(), timezone.now().date())
    out = io.BytesIO()

    evidence_export(type_name="data_flow", period=today, out=out, actor_repr="test")

    with zipfile.ZipFile(out) as package:
        (row,) = [json.loads(line) for line in package.read("data_flow.jsonl").splitlines()]
    assert version.model in json.loads(row["models"])
    assert "v1: a setting its spec refuses, runs refused" in row["redaction"]
    assert "Falcon" not in json.dumps(row)


# --- the admin -------------------------------------------------------------------------------------------


def test_the_admin_help_is_written_from_the_spec():
    field = PromptVersion._meta.get_field("routing").formfield()

    assert isinstance(field, SpecFormField)
    assert "max_input_tokens (a positive integer, required)" in field.help_text
    assert RoutingSpec.model_fields["rules"].description in field.help_text
    assert "routes (an object of string → string, required)" in field.help_text
    assert str(PromptVersion._meta.get_field("redaction").help_text).count("<li>") == 2


@pytest.mark.django_db
def test_the_admin_form_refuses_a_bad_setting_on_its_field_and_reads_empty_as_none(client, prompt, author):
    client.force_login(author)
    form = {
        **{k: (json.dumps(v) if isinstance(v, list | dict) else v) for k, v in version_content().items()},
        "prompt": prompt.pk,
        "change_summary": "Written in the admin",
        "routing": json.dumps({"rules": [{"max_input_tokens": "500", "model": "claude-haiku-4-5"}]}),
        "redaction": "",
    }

    response = client.post("/admin/prompts/promptversion/add/", form)

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["routing"] == ["rules[0].max_input_tokens: must be an integer"]
    assert "redaction" not in response.context["adminform"].form.errors
    assert not PromptVersion.objects.exists()

    form["routing"] = json.dumps({"rules": [{"max_input_tokens": 500, "model": "claude-haiku-4-5"}]})
    assert client.post("/admin/prompts/promptversion/add/", form).status_code == 302
    assert PromptVersion.objects.get().redaction == {}
