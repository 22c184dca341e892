"""URLs under /api/v1/: each app contributes its own `api/urls.py`."""

from __future__ import annotations

from django.urls import include, path

app_name = "api"
urlpatterns = [
    path("", include("gateway.api.urls")),
    path("", include("usage.api.urls")),
]
