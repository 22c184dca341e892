"""The API's edges: malformed bodies and headers, unknown paths and unexpected errors all answer problem
JSON with a 4xx (or a 500 for a bug), never Django's HTML pages or a RecursionError."""

from __future__ import annotations

import io
import json
import sys
import threading

import httpx2
import pytest
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.core.handlers.wsgi import WSGIHandler
from django.test import Client
from rest_framework.test import APIClient as HttpClient

from config.exceptions import bad_request_view
from config.parsers import MAX_DEPTH
from core.problems import PROBLEM_CONTENT_TYPE
from tests.conftest import web_server

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(api_world):
    http = HttpClient()
    http.credentials(HTTP_AUTHORIZATION=f"Bearer {api_world['token']}")
    return http


def post_raw(api, path, body: bytes, content_type="application/json", **extra):
    return api.generic("POST", path, body, content_type=content_type, **extra)


def problem(response) -> dict:
    assert response["Content-Type"] == PROBLEM_CONTENT_TYPE, response.content[:200]
    body = json.loads(response.content)
    assert body["status"] == response.status_code
    return body


ESTIMATE = "/api/v1/cost/estimate"
RUN = "/api/v1/prompts/support-summary/run"


@pytest.mark.parametrize("path", [ESTIMATE, RUN])
def test_json_nested_ten_thousand_deep_is_a_400(api, path):
    response = post_raw(api, path, b"[" * 10_000 + b"]" * 10_000)

    assert response.status_code == 400
    assert problem(response)["code"] == "invalid_request"
    assert "nest" in problem(response)["detail"]


def test_nesting_up_to_the_limit_is_parsed_and_one_more_level_is_refused(api):
    def nested(depth: int) -> bytes:
        return b'{"model": "claude-haiku-4-5", "input_tokens": 1, "output_tokens": 1, "batch": ' + (
            b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"
        )

    at_limit = post_raw(api, ESTIMATE, nested(MAX_DEPTH))  # parsed; the serializer refuses the array
    over = post_raw(api, ESTIMATE, nested(MAX_DEPTH + 1))

    assert problem(at_limit)["errors"] == {"batch": ["Must be true or false."]}
    assert (over.status_code, problem(over)["code"]) == (400, "invalid_request")
    assert "errors" not in problem(over)


def test_deep_json_is_a_400_on_a_server_thread_with_a_small_stack(transactional_db, api_world):
    """As gunicorn's gthread workers run it: the WSGI handler on a thread whose stack is far smaller than
    the main thread's (CPython's recursion limit alone does not protect such a thread)."""
    body = b"[" * 10_000 + b"]" * 10_000
    environ = {
        "REQUEST_METHOD": "POST", "PATH_INFO": ESTIMATE, "SERVER_NAME": "testserver", "SERVER_PORT": "80",
        "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(body), "wsgi.errors": sys.stderr,
        "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(body)),
        "HTTP_AUTHORIZATION": f"Bearer {api_world['token']}", "REMOTE_ADDR": "127.0.0.1",
    }  # fmt: skip
    answer: dict = {}

    def serve() -> None:
        def start_response(status: str, headers: list) -> None:
            answer["status"], answer["headers"] = status, dict(headers)

        answer["body"] = b"".join(WSGIHandler()(environ, start_response))  # type: ignore[arg-type]

    previous = threading.stack_size(512 * 1024)
    try:
        thread = threading.Thread(target=serve)
        thread.start()
        thread.join(30)
    finally:
        threading.stack_size(previous)

    assert answer["status"].startswith("400")
    assert answer["headers"]["Content-Type"] == PROBLEM_CONTENT_TYPE
    assert json.loads(answer["body"])["code"] == "invalid_request"


def test_a_body_over_the_limit_is_a_413_before_it_is_read(api, settings):
    body = json.dumps({"model": "claude-haiku-4-5", "input_tokens": 1, "output_tokens": 1, "pad": "x" * 1_100_000})

    response = post_raw(api, ESTIMATE, body.encode())

    assert len(body) > settings.TOLLGATE_MAX_REQUEST_BYTES == 1024 * 1024
    assert (response.status_code, problem(response)["code"]) == (413, "request_too_large")


def test_djangos_own_body_limit_is_a_413_too(api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10  # below TOLLGATE_MAX_REQUEST_BYTES: Django's check trips first

    response = post_raw(api, ESTIMATE, b'{"model": "claude-haiku-4-5", "input_tokens": 1, "output_tokens": 1}')

    assert (response.status_code, problem(response)["code"]) == (413, "request_too_large")


@pytest.mark.parametrize("length", ["abc", "-1", "1e3", "12 ", "٣"])
def test_a_content_length_that_is_not_a_byte_count_is_a_400(api, length):
    response = post_raw(api, ESTIMATE, b"{}", CONTENT_LENGTH=length)

    assert (response.status_code, problem(response)["code"]) == (400, "invalid_request")
    assert "Content-Length" in problem(response)["detail"]


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        (b'{"model": "\xff\xfe"}', "UTF-8"),
        (b'{"model": "a\\u0000b", "input_tokens": 1, "output_tokens": 1}', "NUL"),
        (b'{"model\\u0000": 1}', "NUL"),
        (b'{"model": "\\ud800", "input_tokens": 1, "output_tokens": 1}', "surrogate"),
        (b'{"\\udfff": 1}', "surrogate"),
        (b'{"input_tokens": NaN}', "NaN"),
        (b'{"input_tokens": -Infinity}', "Infinity"),
        (b'{"input_tokens": 1e999}', "finite"),
        (b'{"input_tokens": ' + b"9" * 101 + b"}", "digits"),
        (b'{"input_tokens": 1' + b"0" * 5000 + b"}", "digits"),
        (b'{"model": ', "not valid JSON"),
    ],
)
def test_bodies_that_cannot_be_handed_on_safely_are_a_400(api, body, complaint):
    response = post_raw(api, ESTIMATE, body)

    assert (response.status_code, problem(response)["code"]) == (400, "invalid_request")
    assert complaint in problem(response)["detail"]


def test_a_valid_surrogate_pair_and_brackets_inside_strings_are_fine(api):
    model = b'"\\ud83d\\ude00' + b"[" * 90 + b'"'  # an emoji as its escaped pair, then 90 brackets
    response = post_raw(api, ESTIMATE, b'{"model": ' + model + b', "input_tokens": 1, "output_tokens": 1}')

    # Parsed and validated: only the price book has never heard of this model.
    assert (response.status_code, problem(response)["code"]) == (400, "model_not_priced")


def test_a_body_that_is_not_json_is_a_415(api):
    response = post_raw(api, ESTIMATE, b"model=claude", content_type="application/x-www-form-urlencoded")

    assert (response.status_code, problem(response)["code"]) == (415, "unsupported_media_type")


def test_unknown_fields_and_values_of_the_wrong_json_type_are_named(api):
    response = api.post(
        ESTIMATE, {"model": "claude-haiku-4-5", "input_tokens": "12", "output_tokens": 1.0, "batch": 0, "modle": "x"},
        format="json",
    )  # fmt: skip

    assert response.status_code == 400
    assert problem(response)["errors"] == {
        "batch": ["Must be true or false."],
        "input_tokens": ["Must be a whole number."],
        "modle": ["Unknown field."],
        "output_tokens": ["Must be a whole number."],
    }


def test_an_unknown_api_path_is_a_problem_404_with_debug_on_or_off(api, settings):
    for debug in (False, True):
        settings.DEBUG = debug
        for path in (
            "/api/v1/nope",
            "/api/v1/prompts/support-summary/nope",
            "/api/v1/",
            "/api/v1/prompts/a b",
            "/api/v1/prompts/",
            "/api/v2/prompts",
            "/api/",
        ):
            response = api.post(path) if path.endswith("nope") else api.get(path)
            assert (response.status_code, problem(response)["code"]) == (404, "not_found"), path


def test_an_unknown_path_elsewhere_keeps_djangos_html_page(client):
    response = client.get("/no-such-page")

    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


def test_the_docs_and_schema_keep_their_trailing_slash_redirect(client):
    assert client.get("/api/docs")["Location"] == "/api/docs/"
    assert client.get("/api/schema")["Location"] == "/api/schema/"


def test_nul_in_a_path_or_query_is_a_400_before_any_query(api):
    for path in ("/api/v1/runs/run_%00x", "/api/v1/usage?group_by=day%00"):
        response = api.get(path)
        assert (response.status_code, problem(response)["code"]) == (400, "invalid_request"), path


def test_an_authorization_header_that_is_not_utf8_is_a_401(api_world):
    response = Client().get("/api/v1/prompts", HTTP_AUTHORIZATION="B\xe9arer x")  # latin-1, as WSGI passes it
    bearer = Client().get("/api/v1/prompts", HTTP_AUTHORIZATION="Bearer tg_prd_\xe9\xff")

    assert (response.status_code, problem(response)["code"]) == (401, "authentication_failed")
    assert (bearer.status_code, problem(bearer)["code"]) == (401, "authentication_failed")


def test_an_unexpected_error_outside_a_view_is_a_problem_500_under_api_and_html_elsewhere(monkeypatch):
    def broken(request):
        raise RuntimeError("canary-7c41 internals")

    monkeypatch.setattr("config.middleware.ApiRequestGuardMiddleware.__call__",
                        lambda self, request: broken(request))  # fmt: skip
    client = Client(raise_request_exception=False)

    api_answer = client.get("/api/v1/prompts")
    page = client.get("/healthz")

    assert (api_answer.status_code, problem(api_answer)["code"]) == (500, "internal_error")
    assert "canary-7c41" not in api_answer.content.decode()
    assert page.status_code == 500
    assert page["Content-Type"].startswith("text/html")


def test_deep_json_is_a_400_under_the_production_server(transactional_db, api_world):
    """Production's server (deploy/: gunicorn's gthread workers, as the benchmarks run it) on the test
    database."""
    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        pytest.skip("a server process cannot share an in-memory SQLite test database")
    body = b"[" * 10_000 + b"]" * 10_000
    with web_server() as url:
        response = httpx2.post(
            f"{url}{ESTIMATE}", content=body, timeout=30,
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {api_world['token']}"},
        )  # fmt: skip

    assert response.status_code == 400
    assert response.headers["Content-Type"] == PROBLEM_CONTENT_TYPE
    assert response.json()["code"] == "invalid_request"


def test_djangos_body_limit_met_outside_a_view_is_a_413_under_api(rf):
    response = bad_request_view(rf.post(ESTIMATE), RequestDataTooBig("too big"))
    page = bad_request_view(rf.post("/admin/login/"), RequestDataTooBig("too big"))

    assert (response.status_code, problem(response)["code"]) == (413, "request_too_large")
    assert page.status_code == 400
    assert page["Content-Type"].startswith("text/html")
