"""URLs under /api/v1/: each app contributes its own `api/urls.py`."""

from __future__ import annotations

from django.urls import include, path, re_path

from config.exceptions import api_not_found

app_name = "api"
urlpatterns = [
    path("", include("prompts.api.urls")),
    path("", include("usage.api.urls")),
    # Last: any other path under /api/v1/ is a problem-JSON 404, with DEBUG on as well as off.
    re_path(r"", api_not_found, name="not-found"),
]
