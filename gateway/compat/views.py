"""The Anthropic-compatible endpoint (docs/anthropic.md): `anthropic.Anthropic(base_url=".../anthropic",
api_key="tg_…")` works unchanged. Thin views: the body is accepted by `intake`, the call made by the run
pipeline, the answer written in Anthropic's wire format (`wire`); every error in Anthropic's shape."""

from __future__ import annotations

from typing import Any

from django.http import HttpResponseBase, StreamingHttpResponse
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.context import current_request_id, new_request_id
from core.errors import ModelNotFound
from core.problems import anthropic_error_body
from core.scopes import Scope
from gateway.api.views import call_answer
from gateway.batches import batch_cancel, batch_current, batch_for_client
from gateway.compat.batches import (
    message_batch_create,
    message_batch_document,
    message_batch_page,
    message_batch_results,
)
from gateway.compat.intake import messages_intake
from gateway.compat.services import messages_prepare, models_for, tokens_count
from gateway.compat.wire import AnthropicStreamWire, message_events
from gateway.pipeline import Prepared
from keys.authentication import AnthropicKeyAuthentication, request_client
from keys.ratelimit import ClientRateLimit


class AnthropicApi(APIView):
    """Authenticates the SDK's way and answers errors in Anthropic's shape."""

    authentication_classes = (AnthropicKeyAuthentication,)
    required_scope = Scope.ANTHROPIC
    schema = None  # described on its own page (docs/anthropic.md): the OpenAPI schema is Tollgate's own API

    def handle_exception(self, exc: Exception) -> Response:
        response = super().handle_exception(exc)
        response.data = anthropic_error_body(response.data)
        response.content_type = "application/json"
        return response


class MessagesApi(AnthropicApi):
    throttle_classes = (ClientRateLimit,)

    def post(self, request: Request) -> HttpResponseBase:
        client = request_client(request)
        call = messages_intake(client, request.data)
        request_id = current_request_id() or new_request_id()

        def prepare() -> Prepared:
            return messages_prepare(client, call, request_id=request_id)

        return call_answer(
            request,
            client,
            digest_of={"anthropic": request.data},
            stream=call.stream,
            prepare=prepare,
            wire=AnthropicStreamWire,
            replay_events=message_events,
        )


class CountTokensApi(AnthropicApi):
    throttle_classes = (ClientRateLimit,)

    def post(self, request: Request) -> Response:
        client = request_client(request)
        call = messages_intake(client, request.data, counting=True)
        tokens = tokens_count(client, call, request_id=current_request_id() or new_request_id())
        return Response({"input_tokens": tokens})


class ModelListApi(AnthropicApi):
    def get(self, request: Request) -> Response:
        models = models_for(request_client(request))
        return Response(
            {
                "data": models,
                "has_more": False,
                "first_id": models[0]["id"] if models else None,
                "last_id": models[-1]["id"] if models else None,
            }
        )


class ModelDetailApi(AnthropicApi):
    def get(self, request: Request, model_id: str) -> Response:
        for model in models_for(request_client(request)):
            if model["id"] == model_id:
                return Response(model)
        raise ModelNotFound(f"This client may not name the model '{model_id[:80]}'.")


def _origin(request: Request) -> str:
    return f"{request.scheme}://{request.get_host()}"


class MessageBatchListApi(AnthropicApi):
    throttle_classes = (ClientRateLimit,)  # counts the POST

    def post(self, request: Request) -> Response:
        batch = message_batch_create(request_client(request), request.data)
        return Response(message_batch_document(batch, origin=_origin(request)))

    def get(self, request: Request) -> Response:
        query = request.query_params
        return Response(
            message_batch_page(
                request_client(request),
                after_id=query.get("after_id"),
                before_id=query.get("before_id"),
                limit=query.get("limit"),
                origin=_origin(request),
            )
        )


class MessageBatchDetailApi(AnthropicApi):
    def get(self, request: Request, batch_id: str) -> Response:
        batch = batch_current(client=request_client(request), batch_id=batch_id)
        return Response(message_batch_document(batch, origin=_origin(request)))


class MessageBatchCancelApi(AnthropicApi):
    def post(self, request: Request, batch_id: str) -> Response:
        batch = batch_cancel(batch=batch_for_client(client=request_client(request), batch_id=batch_id))
        return Response(message_batch_document(batch, origin=_origin(request)))


class MessageBatchResultsApi(AnthropicApi):
    def perform_content_negotiation(self, request: Request, force: bool = False) -> Any:
        return super().perform_content_negotiation(request, force=True)  # the SDK accepts application/binary

    def get(self, request: Request, batch_id: str) -> StreamingHttpResponse:
        batch = batch_current(client=request_client(request), batch_id=batch_id)
        response = StreamingHttpResponse(message_batch_results(batch), content_type="application/x-jsonl")
        response["Cache-Control"] = "no-store"
        return response
