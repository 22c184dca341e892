from __future__ import annotations

import pytest

from keys import services as key_services

pytestmark = pytest.mark.django_db

SCHEMA = "application/vnd.oai.openapi+json"


@pytest.fixture
def public_docs(settings):
    settings.TOLLGATE_API_DOCS_PUBLIC = True


@pytest.mark.usefixtures("public_docs")
def test_the_openapi_schema_is_served(client):
    response = client.get("/api/schema/", HTTP_ACCEPT=SCHEMA)

    assert response.status_code == 200
    assert response.json()["info"]["title"] == "Tollgate API"


@pytest.mark.usefixtures("public_docs")
def test_the_interactive_docs_load_their_assets_from_us_not_a_cdn(client):
    html = client.get("/api/docs/").content.decode()

    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in html
    assert "cdn" not in html.lower()


@pytest.mark.usefixtures("public_docs")
def test_the_docs_run_no_inline_script(client):
    html = client.get("/api/docs/").content.decode()
    script = client.get("/api/docs/?script=")

    assert '<script src="/api/docs/?script="></script>' in html
    assert "<script>" not in html
    assert script.status_code == 200
    assert script["Content-Type"].startswith("application/javascript")
    assert "/api/schema/" in script.content.decode()


@pytest.mark.usefixtures("public_docs")
def test_the_schema_documents_every_public_endpoint(client):
    paths = client.get("/api/schema/", HTTP_ACCEPT=SCHEMA).json()["paths"]

    assert set(paths) >= {
        "/api/v1/prompts",
        "/api/v1/prompts/{slug}",
        "/api/v1/prompts/{slug}/run",
        "/api/v1/runs/{run_id}",
        "/api/v1/prompts/{slug}/jobs",
        "/api/v1/jobs/{job_id}",
        "/api/v1/prompts/{slug}/batches",
        "/api/v1/batches/{batch_id}",
        "/api/v1/batches/{batch_id}/cancel",
        "/api/v1/batches/{batch_id}/results",
        "/api/v1/usage",
        "/api/v1/cost/estimate",
    }
    usage = paths["/api/v1/usage"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert usage == {"$ref": "#/components/schemas/Usage"}


def test_without_the_setting_anonymous_callers_get_neither_docs_nor_schema(client, settings):
    settings.TOLLGATE_API_DOCS_PUBLIC = False

    docs = client.get("/api/docs/")
    script = client.get("/api/docs/?script=")
    schema = client.get("/api/schema/", HTTP_ACCEPT=SCHEMA)

    assert docs.status_code == 302
    assert docs["Location"].startswith("/admin/login/?next=/api/docs/")
    assert script.status_code == 302
    assert schema.status_code == 401
    assert schema.json()["code"] == "authentication_failed"


def test_without_the_setting_staff_see_the_docs_and_the_schema(client, settings, outsider):
    settings.TOLLGATE_API_DOCS_PUBLIC = False
    client.force_login(outsider)

    assert client.get("/api/docs/").status_code == 200
    assert client.get("/api/schema/", HTTP_ACCEPT=SCHEMA).status_code == 200


def test_without_the_setting_an_api_token_fetches_the_schema(client, settings, custodian):
    settings.TOLLGATE_API_DOCS_PUBLIC = False
    api_client, _ = key_services.api_client_create(
        actor=custodian, name="docs", environment="development", owner=custodian, all_prompts=True
    )
    _, token = key_services.api_token_issue(actor=custodian, client=api_client, label="docs")

    with_token = client.get("/api/schema/", HTTP_ACCEPT=SCHEMA, HTTP_AUTHORIZATION=f"Bearer {token}")
    wrong_token = client.get("/api/schema/", HTTP_ACCEPT=SCHEMA, HTTP_AUTHORIZATION="Bearer tg_development_nope")

    assert with_token.status_code == 200
    assert wrong_token.status_code == 401


def test_the_docs_are_public_by_default_only_with_debug():
    from config.settings import base

    assert base.TOLLGATE_API_DOCS_PUBLIC == base.DEBUG


PROBLEM = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}


@pytest.mark.usefixtures("public_docs")
def test_every_operation_documents_its_errors_as_problem_json(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    paths = schema["paths"]

    assert set(schema["components"]["schemas"]["Problem"]["required"]) == {
        "type", "title", "status", "detail", "code", "request_id"
    }  # fmt: skip
    for path, operations in paths.items():
        for method, operation in operations.items():
            for status in ("400", "401", "403", "406", "413", "500"):  # 403: every endpoint requires a scope
                assert operation["responses"][status]["content"] == PROBLEM, (method, path, status)
    assert set(paths["/api/v1/prompts"]["get"]["responses"]) == {"200", "400", "401", "403", "406", "413", "500"}
    run = paths["/api/v1/prompts/{slug}/run"]["post"]["responses"]
    assert {"200", "402", "403", "404", "409", "415", "429", "502", "503", "504"} <= set(run)
    assert "Retry-After" in run["429"]["headers"]
    assert "404" in paths["/api/v1/batches/{batch_id}/results"]["get"]["responses"]
    assert "409" in paths["/api/v1/batches/{batch_id}/cancel"]["post"]["responses"]
    # The success responses are kept as they were.
    assert "application/x-ndjson" in paths["/api/v1/batches/{batch_id}/results"]["get"]["responses"]["200"]["content"]


@pytest.mark.usefixtures("public_docs")
def test_inputs_are_closed_and_the_estimate_lists_the_priced_models(client):
    components = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()["components"]

    for name in ("RunInput", "JobInput", "BatchInput", "CostEstimateInput", "RunMetadata"):
        assert components["schemas"][name]["additionalProperties"] is False, name
    model = components["schemas"]["CostEstimateInput"]["properties"]["model"]
    enum_name = model["allOf"][0]["$ref"].rsplit("/", 1)[1]
    assert "claude-haiku-4-5" in components["schemas"][enum_name]["enum"]
