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
