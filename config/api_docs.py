"""The OpenAPI schema and the interactive docs, public only when TOLLGATE_API_DOCS_PUBLIC is on (the
default with DEBUG). Otherwise the docs need a signed-in staff session (else: the admin sign-in page), and
the schema a staff session or a valid API token: the schema maps every endpoint, which is a head start for
someone probing the API, and the docs' own script is served by the same view."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.urls import reverse
from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response

from keys.authentication import ApiTokenAuthentication
from keys.models import ApiToken


def docs_public() -> bool:
    return bool(getattr(settings, "TOLLGATE_API_DOCS_PUBLIC", False))


def _staff(request: Request) -> bool:
    user = getattr(request, "user", None)
    return bool(user is not None and user.is_authenticated and user.is_active and user.is_staff)


class SchemaAccess(BasePermission):
    """Anyone when the docs are public; else a staff session or a valid API token."""

    def has_permission(self, request: Request, view: Any) -> bool:
        return docs_public() or isinstance(request.auth, ApiToken) or _staff(request)


class ApiSchemaView(SpectacularAPIView):
    authentication_classes = [ApiTokenAuthentication, SessionAuthentication]
    permission_classes = [SchemaAccess]


class ApiDocsView(SpectacularSwaggerSplitView):
    """Swagger UI with its start-up script served separately (no inline script: CSP allows it)."""

    authentication_classes = [SessionAuthentication]
    permission_classes: list[Any] = []

    @extend_schema(exclude=True)
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        if not docs_public() and not _staff(request):
            return redirect_to_login(request.get_full_path(), reverse("admin:login"))  # type: ignore[return-value]
        return super().get(request, *args, **kwargs)  # type: ignore[no-any-return,no-untyped-call]
