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
