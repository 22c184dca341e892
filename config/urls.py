from __future__ import annotations

from django.contrib import admin
from django.urls import include, path, re_path
from django.views.generic import RedirectView

from config import health, metrics
from config.api_docs import ApiDocsView, ApiSchemaView
from config.exceptions import api_not_found

admin.site.site_header = "Tollgate"
admin.site.site_title = "Tollgate"
admin.site.index_title = "Governance"

# Under /api/ these answer problem JSON (config/exceptions.py); elsewhere Django's own pages.
handler400 = "config.exceptions.bad_request_view"
handler403 = "config.exceptions.permission_denied_view"
handler404 = "config.exceptions.not_found_view"
handler500 = "config.exceptions.server_error_view"

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics.metrics, name="metrics"),
    path("api/v1/", include("config.api_router")),
    path("api/schema/", ApiSchemaView.as_view(), name="api-schema"),
    path("api/docs/", ApiDocsView.as_view(url_name="api-schema"), name="api-docs"),
    # Any other path under /api/ is a problem-JSON 404, with DEBUG on as well as off (handler404 only
    # answers with DEBUG off). `api/docs` and `api/schema` still get their trailing-slash redirect.
    re_path(r"^api/(?!docs$|schema$)", api_not_found, name="api-not-found"),
    # The Anthropic-compatible endpoint (docs/anthropic.md): base_url "https://<host>/anthropic".
    path("anthropic/", include(("gateway.compat.urls", "anthropic"))),
    re_path(r"^anthropic/", api_not_found, name="anthropic-not-found"),
    # The request log, the queue and the evaluation suites had their admin pages under the prompts app:
    # bookmarks of those pages still arrive.
    re_path(
        r"^admin/prompts/(?P<page>(?:run|job|batch|webhookdelivery)/.*)$",
        RedirectView.as_view(url="/admin/gateway/%(page)s", permanent=True, query_string=True),
    ),
    re_path(
        r"^admin/prompts/(?P<page>evaluation(?:case|run)/.*)$",
        RedirectView.as_view(url="/admin/evaluations/%(page)s", permanent=True, query_string=True),
    ),
    # Single sign-on over OpenID Connect (docs/admin.md, Single sign-on): 404 unless configured.
    path("oidc/", include("identity.sso_urls")),
    # Two-factor authentication (identity.mfa_urls): before the admin, whose catch-all would answer these.
    path("admin/mfa/", include("identity.mfa_urls")),
    # The playground (docs/admin.md, The playground): before the admin, whose catch-all would answer it.
    path("admin/playground/", include("evaluations.urls")),
    path("admin/", admin.site.urls),
]
