from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from usage.api.serializers import CostEstimateInputSerializer, CostEstimateOutputSerializer
from usage.pricing import TokenUsage
from usage.selectors import cost_estimate


class CostEstimateApi(APIView):
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
