from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from config import health, metrics
from config.api_docs import ApiDocsView, ApiSchemaView

admin.site.site_header = "Tollgate"
admin.site.site_title = "Tollgate"
admin.site.index_title = "Governance"

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics.metrics, name="metrics"),
    path("api/v1/", include("config.api_router")),
    path("api/schema/", ApiSchemaView.as_view(), name="api-schema"),
    path("api/docs/", ApiDocsView.as_view(url_name="api-schema"), name="api-docs"),
    path("admin/", admin.site.urls),
]
