"""Typed specs of a prompt version's JSON settings: `routing`, `output_checks` and `redaction`.

One model per field says what its JSON may hold, once. The same model validates a draft
(`prompts.validation`), writes the admin field's help (`prompts.spec_fields`), documents itself as JSON
Schema, and is what the pipeline reads (`routing_of`, `output_checks_of`, `redaction_of`): typed
attributes, never raw keys. Parsing is strict — no coercion ("5" is not 5, true is not 1), no unknown key
— so what a spec accepts is exactly what the pipeline can run. The stored JSON is never rewritten: a spec
only reads it.
"""

from __future__ import annotations

import json
import logging
import re
from functools import lru_cache
from typing import Annotated, Any, Protocol, TypeVar

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from jsonschema_specifications import REGISTRY as METASCHEMAS
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, WithJsonSchema
from pydantic_core import ErrorDetails, PydanticCustomError
from referencing import Resource
from referencing.jsonschema import DRAFT202012

from core.errors import UnreadableSetting

logger = logging.getLogger(__name__)


class Spec(BaseModel):
    """A setting's typed form: strict, closed to unknown keys, immutable once read."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


# --- building blocks --------------------------------------------------------------------------------------


def _compiles(pattern: str) -> str:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise PydanticCustomError(
            "regex",
            "{pattern} is not a valid regular expression: {problem}",
            {"pattern": repr(pattern), "problem": str(exc)},
        ) from None
    return pattern


def _not_blank(text: str) -> str:
    if not text.strip():
        raise PydanticCustomError("blank", "must not be blank")
    return text


# Keywords that apply a subschema to the same value (not to a part of it): a loop through these alone
# never ends, whatever the answer.
_IN_PLACE_LISTS = ("allOf", "anyOf", "oneOf")
_IN_PLACE_ONE = ("not", "if", "then", "else")
_REFERENCES = ("$ref", "$dynamicRef")
_PROBES: tuple[Any, ...] = (None, True, 0, 1.5, "", "text", [], [None], {}, {"": None})


def _subschemas(resource: Resource[Any], resolver: Any) -> list[tuple[Any, Any]]:
    """Every subschema with the resolver that reads its references (base URIs follow `$id`)."""
    resolver = resolver.in_subresource(resource)
    found = [(resource.contents, resolver)]
    for sub in resource.subresources():
        found.extend(_subschemas(sub, resolver))
    return found


def _reference_problem(schema: Any) -> str | None:
    """Why a valid JSON Schema still cannot judge an answer: a reference that points nowhere (jsonschema
    raises on it mid-check), or a reference loop that never consumes any of the answer (it recurses
    without end). Checked statically, then on a few sample answers."""
    if not isinstance(schema, dict):
        return None
    try:
        problem = _static_reference_problem(schema)
        if problem is None:
            _probe(schema)
        return problem
    except Exception as exc:  # jsonschema would fail the same way on every answer
        return f"it cannot be evaluated ({type(exc).__name__})"


def _static_reference_problem(schema: dict[str, Any]) -> str | None:
    root = DRAFT202012.create_resource(schema)
    nodes = _subschemas(root, METASCHEMAS.resolver_with_root(root))
    ours = {id(contents) for contents, _ in nodes}
    edges: dict[int, list[int]] = {}
    for contents, resolver in nodes:
        if not isinstance(contents, dict):
            continue
        targets: list[Any] = [item for key in _IN_PLACE_LISTS for item in contents.get(key, [])]
        targets += [contents[key] for key in _IN_PLACE_ONE if key in contents]
        dependent = contents.get("dependentSchemas")
        targets += list(dependent.values()) if isinstance(dependent, dict) else []
        for key in _REFERENCES:
            reference = contents.get(key)
            if isinstance(reference, str):
                try:
                    targets.append(resolver.lookup(reference).contents)
                except Exception:  # Unresolvable, or a reference too malformed to follow
                    return f"its {key} {reference!r} points to nothing"
        edges[id(contents)] = [id(target) for target in targets if id(target) in ours and isinstance(target, dict)]
    if _has_cycle(edges):
        return "it refers to itself in a loop that never reaches into the answer"
    return None


def _probe(schema: dict[str, Any]) -> None:
    """Check a few sample answers: what raises here would raise on real answers."""
    validator = Draft202012Validator(schema)
    for probe in _PROBES:
        next(validator.iter_errors(probe), None)


def _has_cycle(edges: dict[int, list[int]]) -> bool:
    state: dict[int, int] = {}  # 1: on the current path, 2: done

    def visit(node: int) -> bool:
        state[node] = 1
        for target in edges.get(node, []):
            if state.get(target) == 1 or (target not in state and visit(target)):
                return True
        state[node] = 2
        return False

    return any(node not in state and visit(node) for node in list(edges))


def json_schema_problem(schema: Any) -> str | None:
    """Why `schema` cannot check answers (None: it can): not a valid draft 2020-12 JSON Schema, or one
    that fails while checking."""
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        return f"not a valid JSON Schema: {exc.message}"
    problem = _reference_problem(schema)
    return f"not a usable JSON Schema: {problem}" if problem else None


def _valid_json_schema(schema: Any) -> Any:
    problem = json_schema_problem(schema)
    if problem:
        raise PydanticCustomError("json_schema", "is {problem}", {"problem": problem})
    return schema


PositiveInt = Annotated[int, Field(gt=0)]
ModelId = Annotated[str, Field(min_length=1, description="A model id, e.g. claude-haiku-4-5.")]
Pattern = Annotated[str, AfterValidator(_compiles), Field(description="A Python regular expression.")]
JsonSchema = Annotated[
    Any,
    AfterValidator(_valid_json_schema),
    WithJsonSchema({"type": ["object", "boolean"], "description": "A JSON Schema (draft 2020-12)."}),
]


# --- routing ----------------------------------------------------------------------------------------------


class RoutingRule(Spec):
    """Send small requests to another model."""

    max_input_tokens: PositiveInt = Field(
        description="The largest estimated input, in tokens (about 4 characters each), the rule takes."
    )
    model: ModelId = Field(description="The model to call instead of the default.")


class Classifier(Spec):
    """Let another prompt's answer pick the model."""

    prompt: str = Field(
        min_length=1,
        description="The slug of the classifier prompt. It needs an approved version before this one is "
        "submitted; it is given the variables it declares.",
    )
    routes: dict[str, ModelId] = Field(
        min_length=1,
        description="Its answer (or the one route word in it, case ignored) → the model to call; any other "
        "answer keeps the default model.",
    )


class RoutingSpec(Spec):
    """Which model a run calls, when not the version's default."""

    rules: list[RoutingRule] = Field(
        default_factory=list, description="Tried in order; the first rule the input fits picks the model."
    )
    classifier: Classifier | None = Field(default=None, description="Asked when no rule fits.")

    def models(self) -> set[str]:
        """Every model the routing may pick."""
        picked = {rule.model for rule in self.rules}
        if self.classifier is not None:
            picked.update(self.classifier.routes.values())
        return picked


# --- output checks ----------------------------------------------------------------------------------------


class OutputChecksSpec(Spec):
    """What each answer is checked for; a run's result says which checks failed."""

    required_patterns: list[Pattern] = Field(
        default_factory=list, description="Regular expressions the answer must contain a match of."
    )
    json_schema: JsonSchema | None = Field(
        default=None, description="The answer must parse as JSON and validate against this schema."
    )
    max_length: PositiveInt | None = Field(default=None, description="The most characters the answer may have.")


# --- redaction --------------------------------------------------------------------------------------------


class RedactionSpec(Spec):
    """This prompt's own terms and patterns to redact, on top of the automatic personal-data detection."""

    terms: list[Annotated[str, AfterValidator(_not_blank)]] = Field(
        default_factory=list, description='Words or phrases, matched case-insensitively, e.g. "Project Falcon".'
    )
    patterns: list[Pattern] = Field(default_factory=list, description=r'Regular expressions, e.g. "ACME-\d+".')


# --- reading and checking ---------------------------------------------------------------------------------

S = TypeVar("S", bound=Spec)

# The spec of each field of PromptVersion.
FIELD_SPECS: dict[str, type[Spec]] = {
    "routing": RoutingSpec,
    "output_checks": OutputChecksSpec,
    "redaction": RedactionSpec,
}


class Versioned(Protocol):
    routing: Any
    output_checks: Any
    redaction: Any


@lru_cache(maxsize=1024)
def _parsed(spec: type[Spec], text: str) -> Spec:
    return spec.model_validate_json(text)


def spec_parse(spec: type[S], value: Any) -> S:
    """The value read as `spec` (pydantic.ValidationError when it does not fit). Read as JSON, so that
    it is judged exactly as stored; parsed once per distinct value."""
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        raise ValidationError.from_exception_data(
            spec.__name__, [{"type": PydanticCustomError("not_json", "must be JSON"), "loc": (), "input": None}]
        ) from None
    parsed = _parsed(spec, text)
    assert isinstance(parsed, spec)
    return parsed


def _stored(spec: type[S], version: Versioned, field: str) -> S:
    try:
        return spec_parse(spec, getattr(version, field))
    except ValidationError as exc:
        # Only where the problems are, never the values: a redaction term is itself confidential.
        places = sorted({".".join(str(part) for part in error["loc"]) or "(top)" for error in exc.errors()})
        logger.error("A stored %s setting fails its spec at %s", field, ", ".join(places))
        raise UnreadableSetting(
            f"The prompt version's {field} setting does not pass its checks any more; an approver must release "
            "a corrected version."
        ) from None


def routing_of(version: Versioned) -> RoutingSpec:
    """The version's routing, typed (UnreadableSetting when what is stored does not fit)."""
    return _stored(RoutingSpec, version, "routing")


def output_checks_of(version: Versioned) -> OutputChecksSpec:
    return _stored(OutputChecksSpec, version, "output_checks")


def redaction_of(version: Versioned) -> RedactionSpec:
    return _stored(RedactionSpec, version, "redaction")


def spec_errors(spec: type[Spec], value: Any) -> list[str]:
    """What is wrong with a value for `spec`, one sentence each, located by its JSON path (empty: valid)."""
    try:
        spec_parse(spec, value)
    except ValidationError as exc:
        return [error_message(error) for error in exc.errors(include_url=False)]
    return []


_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_MESSAGES = {
    "model_type": "must be an object",
    "dict_type": "must be an object",
    "list_type": "must be a list",
    "string_type": "must be text",
    "int_type": "must be an integer",
    "json_invalid": "must be JSON",
    "json_type": "must be JSON",
    "string_too_short": "must not be empty",
    "too_short": "must not be empty",
}


def _path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif _PLAIN_KEY.fullmatch(part):
            path += f".{part}" if path else part
        else:
            path += f"[{json.dumps(part, ensure_ascii=False)}]"
    return path


def error_message(error: ErrorDetails) -> str:
    """One pydantic error as a sentence for the version's author."""
    loc, kind = tuple(error["loc"]), error["type"]
    if kind == "extra_forbidden" and loc:
        where, message = _path(loc[:-1]), f"unknown key {str(loc[-1])!r}"
    elif kind == "missing" and loc:
        where, message = _path(loc[:-1]), f"{str(loc[-1])!r} is required"
    elif kind == "greater_than":
        limit = (error.get("ctx") or {}).get("gt")
        where, message = _path(loc), "must be a positive integer" if limit == 0 else f"must be greater than {limit}"
    else:
        where, message = _path(loc), _MESSAGES.get(kind, error["msg"])
    return f"{where}: {message}" if where else message


# --- the admin's help -------------------------------------------------------------------------------------


def _type_text(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        return "an object"
    if "anyOf" in schema:
        return " or ".join(_type_text(option) for option in schema["anyOf"] if option.get("type") != "null")
    kind = schema.get("type")
    if kind == "array":
        return f"a list of {_type_text(schema.get('items', {})).split(' ', 1)[-1]}s"
    if kind == "object" and "additionalProperties" in schema:
        return "an object of string → string"
    if kind == "integer":
        return "a positive integer" if schema.get("exclusiveMinimum") == 0 else "an integer"
    if kind == "string":
        return "a string"
    if isinstance(kind, list):
        return " or ".join(f"an {item}" if item[0] in "aeiou" else f"a {item}" for item in kind)
    return "any JSON value"


def _field_lines(schema: dict[str, Any], definitions: dict[str, Any], depth: int) -> list[tuple[int, str]]:
    lines = []
    for name, field in schema.get("properties", {}).items():
        description = field.get("description", "")
        required = ", required" if name in schema.get("required", []) else ""
        lines.append((depth, f"{name} ({_type_text(field)}{required}): {description}".rstrip(": ")))
        nested = field.get("items", field) if field.get("type") == "array" else field
        reference = nested.get("$ref") or next(
            (option["$ref"] for option in nested.get("anyOf", []) if "$ref" in option), None
        )
        if reference:
            lines.extend(_field_lines(definitions[reference.rsplit("/", 1)[-1]], definitions, depth + 1))
    return lines


def spec_help_lines(spec: type[Spec]) -> list[tuple[int, str]]:
    """The spec's keys as (depth, "name (type): description") lines, read from its JSON Schema."""
    schema = spec.model_json_schema()
    return _field_lines(schema, schema.get("$defs", {}), 0)
