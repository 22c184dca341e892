from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.errors import RoleRequired
from keys.models import ApiClient
from prompts.api.serializers import PromptOutputSerializer
from prompts.errors import PromptNotFound
from prompts.selectors import releases_in


class PromptListApi(APIView):
    @extend_schema(responses=PromptOutputSerializer(many=True), summary="Prompts this client may run")
    def get(self, request: Request) -> Response:
        client: ApiClient = request.user  # type: ignore[assignment]
        releases = [release for release in releases_in(client.environment) if client.may_run(release.prompt.slug)]
        return Response(PromptOutputSerializer(releases, many=True).data)


class PromptDetailApi(APIView):
    @extend_schema(responses=PromptOutputSerializer, summary="One prompt this client may run")
    def get(self, request: Request, slug: str) -> Response:
        client: ApiClient = request.user  # type: ignore[assignment]
        release = releases_in(client.environment).filter(prompt__slug=slug).first()
        if release is None:
            raise PromptNotFound(f"No prompt '{slug}' is released to {client.environment}.")
        if not client.may_run(slug):
            raise RoleRequired(f"This API client may not run '{slug}'.")
        return Response(PromptOutputSerializer(release).data)
