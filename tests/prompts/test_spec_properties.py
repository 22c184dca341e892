"""Any JSON an author may type into a version's routing, output checks or redaction: the spec accepts
exactly what the pipeline can run. What it accepts reads back unchanged and runs through the pipeline's
own functions without error; what it refuses is refused with sentences, by the form as by the services,
never with an exception."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
from django.core.exceptions import ValidationError as FormError
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from gateway.checks import expectation_failures, output_checks_run
from gateway.pipeline import _route_named, rule_for
from gateway.redaction.engine import PLACEHOLDER, custom_patterns, redact_variables
from prompts.services import version_models
from prompts.spec_fields import SpecFormField
from prompts.specs import (
    OutputChecksSpec,
    RedactionSpec,
    RoutingSpec,
    Spec,
    json_schema_problem,
    spec_errors,
    spec_parse,
)
from prompts.validation import version_content_errors
from tests.factories import version_content

pytestmark = pytest.mark.filterwarnings("ignore:Possible .* at position:FutureWarning")  # drawn regexes like "[["

PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- arbitrary JSON, and JSON shaped like each setting ----------------------------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)  # fmt: skip


def objects(fields: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """Objects holding some of `fields` (each drawn as shaped, or as any JSON), now and then an unknown key."""
    keys = [*fields, "extra"]
    return st.dictionaries(st.sampled_from(keys), st.just(None), max_size=len(keys)).flatmap(
        lambda chosen: st.fixed_dictionaries(
            {key: (fields[key] | json_values) if key in fields else json_values for key in chosen}
        )
    )


def settings_like(shaped: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return shaped | json_values


# Small alphabets: words, regex syntax (valid and not), and text that routes and patterns meet.
regexes = st.text(alphabet="ab( )[]*+?\\.|^$\\d{}", max_size=8)
models = st.sampled_from(["claude-haiku-4-5", "claude-sonnet-4-6", ""]) | st.text(max_size=6)
sizes = st.integers(min_value=-2, max_value=10**6) | st.sampled_from([True, 1.0, "500"])

rules = objects({"max_input_tokens": sizes, "model": models})
classifiers = objects(
    {
        "prompt": st.sampled_from(["tier", ""]),
        "routes": st.dictionaries(st.text(alphabet="ab .-", max_size=5), models, max_size=3),
    }
)
routings = settings_like(objects({"rules": st.lists(rules, max_size=3), "classifier": classifiers | st.none()}))

REFERENCES = ["#", "#/$defs/a", "#/properties/a", "#a", "#/nope", "https://schemas.example/x", "other.json"]


def keywords(inner: st.SearchStrategy[Any]) -> dict[str, st.SearchStrategy[Any]]:
    """JSON Schema keywords with values of their own shape (references that may point anywhere)."""
    named = st.dictionaries(st.sampled_from("ab"), inner, max_size=2)
    some = st.lists(inner, min_size=1, max_size=2)
    return {
        "type": st.sampled_from(["object", "string", "integer", "array", "null"]),
        **dict.fromkeys(["properties", "$defs", "dependentSchemas"], named),
        **dict.fromkeys(["items", "not", "if", "then", "else", "additionalProperties", "contains"], inner),
        **dict.fromkeys(["allOf", "anyOf", "oneOf", "prefixItems"], some),
        "required": st.lists(st.sampled_from("ab"), unique=True, max_size=2),
        "enum": st.lists(scalars, min_size=1, max_size=3),
        "const": scalars,
        **dict.fromkeys(["minimum", "maxLength", "minItems"], st.integers(0, 4)),
        "multipleOf": st.integers(1, 3),
        "pattern": regexes,
        **dict.fromkeys(["$ref", "$dynamicRef"], st.sampled_from(REFERENCES)),
        "$id": st.sampled_from(["https://schemas.example/root", "sub.json", "http://[", "#x"]),
        **dict.fromkeys(["$anchor", "$dynamicAnchor"], st.sampled_from(["a", "b"])),
        "uniqueItems": st.booleans(),
    }


schemas = st.recursive(
    st.booleans() | st.fixed_dictionaries({}, optional={"type": st.sampled_from(["object", "string"])}),
    lambda inner: st.fixed_dictionaries({}, optional=keywords(inner)),
    max_leaves=8,
)
output_checks = settings_like(
    objects(
        {
            "required_patterns": st.lists(regexes, max_size=3),
            "json_schema": schemas | st.none(),
            "max_length": sizes | st.none(),
        }
    )
)

terms = st.sampled_from(["Project Falcon", "ACME", " ", ""]) | st.text(max_size=6)
redactions = settings_like(objects({"terms": st.lists(terms, max_size=3), "patterns": st.lists(regexes, max_size=3)}))

documents = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from("ab"), inner, max_size=2),
    max_leaves=8,
)  # fmt: skip
answers = st.text(alphabet='ab1 {}[]":,.-\n', max_size=30) | documents.map(json.dumps)


# --- the properties ----------------------------------------------------------------------------------------


def parsed_or_refused(spec: type[Spec], value: Any) -> Spec | None:
    """The spec of the value, or None after checking that every way in refuses it with sentences."""
    errors = spec_errors(spec, value)
    field = SpecFormField(spec=spec, required=False)
    try:
        parsed = spec_parse(spec, value)
    except ValidationError:
        assert errors
        assert all(isinstance(error, str) and error for error in errors)
        with pytest.raises(FormError) as refused:
            field.clean(json.dumps(value))
        assert refused.value.messages == errors
        return None
    event(f"{spec.__name__} accepted")
    assert errors == []
    assert parsed.model_dump(exclude_unset=True) == value  # read back unchanged: nothing added or coerced
    assert field.clean(json.dumps(value)) == value
    return parsed


@PROPERTY
@given(value=routings, tokens=st.integers(0, 10**7), answer=st.text(alphabet="ab .-", max_size=12))
def test_routing_accepts_exactly_what_routing_runs(value, tokens, answer):
    routing = parsed_or_refused(RoutingSpec, value)
    if routing is None:
        return
    assert isinstance(routing, RoutingSpec)
    picked = rule_for(routing, tokens)
    if picked is not None:
        assert picked[0] in routing.models()
    if routing.classifier is not None:
        route = _route_named(answer.lower(), routing.classifier.routes)
        assert route is None or routing.classifier.routes[route] in routing.models()
    assert "claude-opus-4-1" in version_models(SimpleNamespace(model="claude-opus-4-1", routing=value))


@PROPERTY
@given(value=output_checks, answer=answers)
def test_output_checks_accept_exactly_what_the_checks_run(value, answer):
    checks = parsed_or_refused(OutputChecksSpec, value)
    if checks is None:
        return
    assert isinstance(checks, OutputChecksSpec)
    for shown in (answer, "null", "[]", '{"a": {"a": [{"b": 1}]}, "b": "a"}'):
        output_checks_run(checks, shown)
    result = output_checks_run(checks, answer)
    assert result["passed"] is (result["failed"] == [])
    # The evaluation's expectations are judged by the same checks.
    expectations = [{"regex": pattern} for pattern in checks.required_patterns]
    if checks.json_schema is not None:
        expectations.append({"json_schema": checks.json_schema})
    missed = expectation_failures(expectations, answer)
    assert len(missed) == len([name for name in result["failed"] if name != "max_length"])


@PROPERTY
@given(schema=schemas, document=documents)
def test_a_json_schema_accepted_for_checks_judges_any_answer(schema, document):
    if json_schema_problem(schema) is None:
        assert output_checks_run(OutputChecksSpec(json_schema=schema), json.dumps(document))["failed"] in (
            [],
            ["json_schema"],
        )


@PROPERTY
@given(value=redactions, text=st.text(alphabet="ab1 ACMEProject Falcon-", max_size=30))
def test_redaction_accepts_exactly_what_redaction_runs(value, text):
    rules = parsed_or_refused(RedactionSpec, value)
    if rules is None:
        return
    assert isinstance(rules, RedactionSpec)
    redacted, redaction = redact_variables([{"name": "ticket"}], {"ticket": text}, custom_patterns(rules))
    assert redaction.rehydrate(redacted["ticket"]) == text
    left = PLACEHOLDER.sub("\0", redacted["ticket"]).lower()
    assert not [term for term in rules.terms if term.isascii() and term.lower() in left]


@PROPERTY
@given(field=st.sampled_from(["routing", "output_checks", "redaction"]), data=st.data())
def test_a_version_with_any_setting_is_saved_or_refused_on_that_field(field, data):
    value = data.draw({"routing": routings, "output_checks": output_checks, "redaction": redactions}[field])

    errors = version_content_errors(version_content(**{field: value}), "A change")

    assert set(errors) <= {field}
    assert all(isinstance(problem, str) and problem for problem in errors.get(field, []))
