from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.scopes import Scope
from usage.api.serializers import (
    CostEstimateInputSerializer,
    CostEstimateOutputSerializer,
    UsageOutputSerializer,
    UsageQuerySerializer,
)
from usage.pricing import TokenUsage
from usage.selectors import cost_estimate, usage_summary


class CostEstimateApi(APIView):
    required_scope = Scope.USAGE_READ

    @extend_schema(
        request=CostEstimateInputSerializer,
        responses=CostEstimateOutputSerializer,
        summary="What a call would cost, from the price book in force now",
    )
    def post(self, request: Request) -> Response:
        data = CostEstimateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        usage = TokenUsage(
            input_tokens=values["input_tokens"],
            output_tokens=values["output_tokens"],
            cache_write_5m_tokens=values["cache_creation_input_tokens"],
            cache_read_tokens=values["cache_read_input_tokens"],
        )
        return Response(cost_estimate(model=values["model"], usage=usage, batch=values["batch"]))


class UsageApi(APIView):
    required_scope = Scope.USAGE_READ

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "from",
                OpenApiTypes.DATE,
                description="First day (UTC); default: the first of this month. At most 366 days before `to`: "
                "an earlier day is moved up, and the answer's `from` says which day was used.",
            ),
            OpenApiParameter(
                "to",
                OpenApiTypes.DATE,
                description="Last day (UTC), inclusive; default: today. Before `from`: an empty period.",
            ),
            OpenApiParameter("group_by", str, enum=["day", "prompt", "model", "feature"]),
        ],
        responses=UsageOutputSerializer,
        summary="This client's calls, tokens and cost",
    )
    def get(self, request: Request) -> Response:
        params = request.query_params
        query = UsageQuerySerializer(
            data={"from_": params.get("from"), "to": params.get("to"), "group_by": params.get("group_by", "day")}
        )
        query.is_valid(raise_exception=True)
        values = query.validated_data
        return Response(
            usage_summary(
                api_client_id=int(getattr(request.user, "pk", 0)),
                start=values["from_"],
                end=values["to"],
                group_by=values["group_by"],
            )
        )
