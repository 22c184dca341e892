"""The invariant of the API's edges: every malformed request to every API endpoint gets a 4xx problem
answer with a documented `code`, never a 5xx. The endpoints are read from the URL resolver, so a new one
is covered without touching this file."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.problems import PROBLEM_CONTENT_TYPE

pytestmark = pytest.mark.django_db

API_DOCS = Path(__file__).resolve().parent.parent.parent / "docs" / "api.md"
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def documented_error_codes() -> set[str]:
    """The codes in the error table of docs/api.md: the rows of `| status | code | when |` in the section
    "## Errors", up to the next heading."""
    section = API_DOCS.read_text().split("\n## Errors\n", 1)[1].split("\n#", 1)[0]
    return {
        code
        for row in section.splitlines()
        if row.startswith("| ")
        for code in re.findall(r"`(\w+)`", row.split("|")[2])
    }


def api_endpoints() -> list[tuple[str, type]]:
    """(route, view class) of every DRF view under api/v1/, e.g. ("api/v1/prompts/<slug:slug>/run", …)."""
    found: list[tuple[str, type]] = []

    def walk(patterns: list, prefix: str) -> None:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, prefix + str(pattern.pattern))
            elif isinstance(pattern, URLPattern) and hasattr(pattern.callback, "cls"):
                route = prefix + str(pattern.pattern)
                if route.startswith("api/v1/"):
                    found.append((route, pattern.callback.cls))

    walk(get_resolver().url_patterns, "")
    return found


ENDPOINTS = api_endpoints()


def allowed_methods(view: type) -> list[str]:
    return [method for method in HTTP_METHODS if hasattr(view, method.lower())]


def request_schema_fields(schema: dict, route: str, method: str) -> dict[str, str]:
    """The top-level fields of an operation's JSON body and their declared JSON types, from the schema."""
    path = "/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route)
    body = schema["paths"][path].get(method.lower(), {}).get("requestBody")
    if not body:
        return {}
    reference = body["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    properties = schema["components"]["schemas"][reference]["properties"]
    return {name: prop.get("type", "object") for name, prop in properties.items()}


# --- what a malformed request can be ---------------------------------------------------------------------

JSON_OF_TYPE = {
    "string": st.text(max_size=10),
    "integer": st.integers(-(10**6), 10**6),
    "number": st.floats(allow_nan=False, allow_infinity=False),
    "boolean": st.booleans(),
    "array": st.lists(st.integers(), max_size=3),
    "object": st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
    "null": st.none(),
}
LATIN1 = st.text(st.characters(max_codepoint=0xFF, exclude_categories=["Cc"]), max_size=40)


def wrong_type_for(declared: str) -> st.SearchStrategy:
    # Integers are numbers too; null may be allowed (defaults): neither counts as a wrong type.
    excluded = {declared, "null"} | ({"integer"} if declared == "number" else set())
    return st.one_of([strategy for name, strategy in JSON_OF_TYPE.items() if name not in excluded])


@st.composite
def malformed_body(draw, fields: dict[str, str]) -> tuple[bytes, str]:
    """A body (and its content type) that no endpoint may accept."""
    kind = draw(st.sampled_from(["bytes", "utf8", "content_type", "deep", "number", "text", "types", "fields", "top"]))
    if kind == "bytes":
        return draw(st.binary(min_size=1, max_size=200)).replace(b"{", b"").replace(
            b"[", b""
        ) or b"\x00", "application/json"
    if kind == "utf8":
        return b'{"model": "' + draw(
            st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80"])
        ) + b'"}', "application/json"
    if kind == "content_type":
        content_type = draw(
            st.sampled_from(
                [
                    "text/plain",
                    "application/xml",
                    "multipart/form-data; boundary=x",
                    "application/x-www-form-urlencoded",
                    "application/jsonx",
                ]
            )
        )
        return draw(st.binary(min_size=1, max_size=50)), content_type
    if kind == "deep":
        depth = draw(st.integers(65, 12_000))
        opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}")]))
        return (opener * depth + "1" + closer * depth).encode(), "application/json"
    if kind == "number":
        number = draw(
            st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "-1e400", "1" + "0" * 120, "0." + "1" * 150])
        )
        name = draw(st.sampled_from(sorted(fields) or ["x"]))
        return f'{{"{name}": {number}}}'.encode(), "application/json"
    if kind == "text":
        bad = draw(st.sampled_from(["\\u0000", "\\ud800", "\\udfff", "a\\u0000b", "\\udbff\\u0041"]))
        name = draw(st.sampled_from(sorted(fields) or ["x"]))
        where = draw(st.sampled_from(["key", "value", "nested"]))
        body = {"key": f'{{"{name}{bad}": "v"}}', "value": f'{{"{name}": "{bad}"}}',
                "nested": f'{{"{name}": {{"k": ["{bad}"]}}}}'}[where]  # fmt: skip
        return body.encode(), "application/json"
    if kind == "types" and fields:
        wrong = draw(st.sampled_from(sorted(fields)))
        return json.dumps({wrong: draw(wrong_type_for(fields[wrong]))}).encode(), "application/json"
    if kind == "fields" and fields:
        extra = draw(st.text(st.characters(min_codepoint=0x61, max_codepoint=0x7A), min_size=1, max_size=12))
        fields_sent = {} if draw(st.booleans()) else {f"{extra}_unknown": 1}  # none required, or one unknown
        return json.dumps(fields_sent).encode(), "application/json"
    top = draw(st.sampled_from(["[]", '"text"', "12", "null", "true", "{", '{"a": 1,}', "{'a': 1}", ""]))
    return top.encode() or b" ", "application/json"


BAD_AUTHORIZATION = st.one_of(
    st.sampled_from(
        [
            "",
            "Bearer",
            "Bearer ",
            "Bearer a b",
            "Basic Zm9vOmJhcg==",
            "bearer",
            "Token x",
            "Bearer tg_prd_",
            "Bearer tg_prd_" + "A" * 38,
            "Bearer tg_xxx_" + "A" * 38,
        ]
    ),
    LATIN1.map(lambda text: "Bearer " + text),
    LATIN1,
)
BAD_CONTENT_LENGTH = st.one_of(
    st.sampled_from(["abc", "-1", "1.5", "0x10", " 1", "+1", "1e3", "٣", "99999999999999999999"]),
    LATIN1.filter(lambda text: not text.isascii() or not text.isdigit()).filter(bool),
)


def fill_route(route: str, draw) -> str:
    def value(match: re.Match) -> str:
        name = match.group(1)
        if name == "slug":
            return draw(st.sampled_from(["support-summary", "no-such-prompt"]))
        return draw(st.sampled_from([f"{name.split('_')[0]}_missing", "x", "%00", "run_%FF"]))

    return "/" + re.sub(r"<(?:\w+:)?(\w+)>", value, route)


@pytest.fixture
def api_schema(client, settings):
    settings.TOLLGATE_API_DOCS_PUBLIC = True  # off in production settings: the schema then needs a sign-in
    return client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()


def assert_documented_problem(response, codes: set[str], what: str) -> None:
    assert 400 <= response.status_code < 500, f"{what}: {response.status_code} {response.content[:300]!r}"
    assert response["Content-Type"] == PROBLEM_CONTENT_TYPE, f"{what}: {response['Content-Type']}"
    body = json.loads(response.content)
    assert body["status"] == response.status_code, what
    assert body["code"] in codes, f"{what}: code {body['code']!r} is not in the error table of docs/api.md"


@pytest.mark.parametrize(("route", "view"), ENDPOINTS, ids=[route for route, _ in ENDPOINTS])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])  # fmt: skip
@given(data=st.data())
def test_every_malformed_request_to_every_endpoint_is_a_documented_4xx(route, view, data, api_world, api_schema):
    codes = documented_error_codes()
    methods = allowed_methods(view)
    path = fill_route(route, data.draw)
    token = {"HTTP_AUTHORIZATION": f"Bearer {api_world['token']}"}
    kind = data.draw(st.sampled_from(["body", "content_length", "authorization", "method", "query"]))
    client = Client()

    if kind == "body" and "POST" in methods:
        body, content_type = data.draw(malformed_body(request_schema_fields(api_schema, route, "POST")))
        response = client.generic("POST", path, body, content_type=content_type, **token)
    elif kind == "content_length":
        method = data.draw(st.sampled_from(methods))
        length = data.draw(BAD_CONTENT_LENGTH)
        response = client.generic(method, path, b"{}", content_type="application/json", CONTENT_LENGTH=length, **token)
    elif kind == "authorization":
        method = data.draw(st.sampled_from(methods))
        header = data.draw(BAD_AUTHORIZATION)
        response = client.generic(method, path, b"{}", content_type="application/json", HTTP_AUTHORIZATION=header)
    elif kind == "method" and set(HTTP_METHODS) - set(methods):
        method = data.draw(st.sampled_from(sorted(set(HTTP_METHODS) - set(methods))))
        response = client.generic(method, path, b"{}", content_type="application/json", **token)
    else:  # a query string that is wrong wherever the endpoint reads one; elsewhere NUL in it
        query = data.draw(st.sampled_from(["from=yesterday", "to=2026-13-01", "group_by=weather", "from=%00",
                                           "group_by=day%00", "from=2026-02-30"]))  # fmt: skip
        if "usage" not in route:
            query = "q=%00"
        response = client.generic(methods[0], f"{path}?{query}", b"", **token)

    assert_documented_problem(response, codes, f"{kind} {path}")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    segments=st.lists(
        st.text(
            st.characters(min_codepoint=0x21, max_codepoint=0x2FF, blacklist_characters="?#%/"), min_size=1, max_size=12
        ),
        min_size=1,
        max_size=4,
    ),
    method=st.sampled_from(HTTP_METHODS),
)
def test_unknown_paths_under_the_api_are_a_problem_404(segments, method, api_world):
    path = "/api/v1/zz-" + "/".join(segments)

    response = Client().generic(method, path, b"{}", content_type="application/json",
                                HTTP_AUTHORIZATION=f"Bearer {api_world['token']}")  # fmt: skip

    assert response.status_code == 404, path
    assert_documented_problem(response, documented_error_codes(), path)
    assert json.loads(response.content)["code"] == "not_found"


def test_every_endpoint_is_covered():
    routes = {route for route, _ in ENDPOINTS}

    assert "api/v1/prompts/<slug:slug>/run" in routes
    assert "api/v1/cost/estimate" in routes
    assert len(routes) >= 12
