from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_the_openapi_schema_is_served(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")

    assert response.status_code == 200
    assert response.json()["info"]["title"] == "Tollgate API"


def test_the_interactive_docs_load_their_assets_from_us_not_a_cdn(client):
    html = client.get("/api/docs/").content.decode()

    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in html
    assert "cdn" not in html.lower()


def test_the_schema_documents_every_public_endpoint(client):
    paths = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()["paths"]

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


PROBLEM = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}


def test_every_operation_documents_its_errors_as_problem_json(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    paths = schema["paths"]

    assert set(schema["components"]["schemas"]["Problem"]["required"]) == {
        "type", "title", "status", "detail", "code", "request_id"
    }  # fmt: skip
    for path, operations in paths.items():
        for method, operation in operations.items():
            for status in ("400", "401", "406", "413", "500"):
                assert operation["responses"][status]["content"] == PROBLEM, (method, path, status)
    assert set(paths["/api/v1/prompts"]["get"]["responses"]) == {"200", "400", "401", "406", "413", "500"}
    run = paths["/api/v1/prompts/{slug}/run"]["post"]["responses"]
    assert {"200", "402", "403", "404", "409", "415", "429", "502", "503", "504"} <= set(run)
    assert "Retry-After" in run["429"]["headers"]
    assert "404" in paths["/api/v1/batches/{batch_id}/results"]["get"]["responses"]
    assert "409" in paths["/api/v1/batches/{batch_id}/cancel"]["post"]["responses"]
    # The success responses are kept as they were.
    assert "application/x-ndjson" in paths["/api/v1/batches/{batch_id}/results"]["get"]["responses"]["200"]["content"]


def test_inputs_are_closed_and_the_estimate_lists_the_priced_models(client):
    components = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()["components"]

    for name in ("RunInput", "JobInput", "BatchInput", "CostEstimateInput", "RunMetadata"):
        assert components["schemas"][name]["additionalProperties"] is False, name
    model = components["schemas"]["CostEstimateInput"]["properties"]["model"]
    enum_name = model["allOf"][0]["$ref"].rsplit("/", 1)[1]
    assert "claude-haiku-4-5" in components["schemas"][enum_name]["enum"]
