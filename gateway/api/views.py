from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from django.http import HttpResponseBase, StreamingHttpResponse
from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import Serializer
from rest_framework.views import APIView

from core.context import current_request_id, new_request_id
from core.errors import PromptNotFound, RoleRequired, RunNotFound
from core.scopes import Scope
from gateway.api.serializers import (
    BatchInputSerializer,
    JobInputSerializer,
    PromptOutputSerializer,
    RunInputSerializer,
)
from gateway.batches import batch_cancel, batch_create, batch_current, batch_for_client
from gateway.documents import BatchDocument, JobDocument, RunResult, StoredRun
from gateway.guards import (
    body_digest,
    idempotency_abort,
    idempotency_begin,
    idempotency_store,
    idempotent_stream,
)
from gateway.jobs import job_for_client, job_submit
from gateway.models import Run
from gateway.pipeline import Prepared, StreamWire, call_execute, replay_stream, run_prepare, run_stream
from gateway.selectors import batch_detail, batch_results_lines, job_detail, run_detail
from keys.authentication import request_client
from keys.models import ApiClient
from keys.ratelimit import ClientRateLimit
from prompts.selectors import releases_in
from usage.choices import Endpoint


class PromptListApi(APIView):
    required_scope = Scope.RUN

    @extend_schema(responses=PromptOutputSerializer(many=True), summary="Prompts this client may run")
    def get(self, request: Request) -> Response:
        client = request_client(request)
        releases = [release for release in releases_in(client.environment) if client.may_run(release.prompt.slug)]
        return Response(PromptOutputSerializer(releases, many=True).data)


class PromptDetailApi(APIView):
    required_scope = Scope.RUN
    problem_statuses = (403,)

    @extend_schema(responses=PromptOutputSerializer, summary="One prompt this client may run")
    def get(self, request: Request, slug: str) -> Response:
        client = request_client(request)
        release = releases_in(client.environment).filter(prompt__slug=slug).first()
        if release is None:
            raise PromptNotFound(f"No prompt '{slug}' is released to {client.environment}.")
        if not client.may_run(slug):
            raise RoleRequired(f"This API client may not run '{slug}'.")
        return Response(PromptOutputSerializer(release).data)


class PromptRunApi(APIView):
    required_scope = Scope.RUN
    problem_statuses = (402, 403, 409, 429, 502, 503, 504)
    throttle_classes = (ClientRateLimit,)

    @extend_schema(
        request=RunInputSerializer,
        responses={200: RunResult},
        summary="Run the version released to this client's environment (JSON, or SSE with stream: true)",
        parameters=[OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER, required=False)],
    )
    def post(self, request: Request, slug: str) -> HttpResponseBase:
        client = request_client(request)
        data = RunInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        request_id = current_request_id() or new_request_id()

        def prepare() -> Prepared:
            return run_prepare(
                client=client,
                slug=slug,
                variables=values["variables"],
                metadata=dict(values["metadata"]),
                endpoint=Endpoint.STREAM if values["stream"] else Endpoint.RUN,
                request_id=request_id,
            )

        return call_answer(
            request,
            client,
            digest_of={"slug": slug, **request.data},
            stream=values["stream"],
            prepare=prepare,
            wire=StreamWire,
            replay_events=replay_stream,
        )


def call_answer(
    request: Request,
    client: ApiClient,
    *,
    digest_of: dict[str, Any],
    stream: bool,
    prepare: Callable[[], Prepared],
    wire: type[StreamWire],
    replay_events: Callable[[dict[str, Any]], Iterator[bytes]],
) -> HttpResponseBase:
    """Prepare and make one call, answered as JSON or as the `wire`'s event stream, with `Idempotency-Key`:
    a repeated key with the same body (`digest_of`) replays the stored answer (a stream as
    `replay_events`), with another body or while the first runs it is a conflict; a failure frees the key."""
    idempotency_key = request.headers.get("Idempotency-Key", "")[:200]
    digest = body_digest(digest_of) if idempotency_key else ""
    if idempotency_key:
        replay = idempotency_begin(client, idempotency_key, digest)
        if replay is not None:
            if stream:
                return _event_stream(replay_events(replay), replayed=True)
            return Response(replay, headers={"Idempotent-Replayed": "true"})
    try:
        prepared = prepare()
        writer = wire(prepared)
        if stream:
            if not idempotency_key:
                return _event_stream(run_stream(prepared, writer))
            completed: dict[str, Any] = {}
            events = run_stream(prepared, writer, completed=completed)
            return _event_stream(
                idempotent_stream(events, client=client, key=idempotency_key, digest=digest, completed=completed)
            )
        document = writer.document(call_execute(prepared))
    except Exception:
        if idempotency_key:
            idempotency_abort(client, idempotency_key)
        raise
    if idempotency_key:
        idempotency_store(client, idempotency_key, digest, document)
    return Response(document)


def _event_stream(events: Iterator[bytes], *, replayed: bool = False) -> StreamingHttpResponse:
    response = StreamingHttpResponse(events, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    if replayed:
        response["Idempotent-Replayed"] = "true"
    return response


def _submit_body(request: Request, serializer: type[Serializer]) -> dict[str, Any]:  # type: ignore[type-arg]
    data = serializer(data=request.data)
    data.is_valid(raise_exception=True)
    return data.validated_data  # type: ignore[no-any-return]


def _accepted(detail: dict[str, Any], url_name: str) -> Response:
    return Response(detail, status=202, headers={"Location": reverse(url_name, args=[detail["id"]])})


class PromptJobApi(APIView):
    required_scope = Scope.JOBS
    problem_statuses = (403, 429)  # the upstream's failures end the job, not the request
    throttle_classes = (ClientRateLimit,)

    @extend_schema(
        request=JobInputSerializer,
        responses={202: JobDocument},
        summary="Queue a run of the released version; the answer comes by polling the job or by callback",
    )
    def post(self, request: Request, slug: str) -> Response:
        values = _submit_body(request, JobInputSerializer)
        job = job_submit(
            client=request_client(request),
            slug=slug,
            variables=values["variables"],
            metadata=dict(values["metadata"]),
            callback_url=values["callback_url"],
        )
        job.refresh_from_db()  # in-process tasks (no broker) have run it already
        return _accepted(job_detail(job), "api:job-detail")


class JobDetailApi(APIView):
    required_scope = Scope.JOBS

    @extend_schema(responses=JobDocument, summary="A job's status and, once done, its result")
    def get(self, request: Request, job_id: str) -> Response:
        return Response(job_detail(job_for_client(client=request_client(request), job_id=job_id)))


class PromptBatchApi(APIView):
    required_scope = Scope.BATCHES
    problem_statuses = (402, 403, 429, 502)
    throttle_classes = (ClientRateLimit,)

    @extend_schema(
        request=BatchInputSerializer,
        responses={202: BatchDocument},
        summary="Run many variable sets through the Message Batches API at the batch price",
    )
    def post(self, request: Request, slug: str) -> Response:
        values = _submit_body(request, BatchInputSerializer)
        batch = batch_create(
            client=request_client(request),
            slug=slug,
            items=values["items"],
            metadata=dict(values["metadata"]),
            callback_url=values["callback_url"],
        )
        batch.refresh_from_db()
        return _accepted(batch_detail(batch), "api:batch-detail")


class BatchDetailApi(APIView):
    required_scope = Scope.BATCHES

    @extend_schema(responses=BatchDocument, summary="A batch's status and counts per item status")
    def get(self, request: Request, batch_id: str) -> Response:
        return Response(batch_detail(batch_current(client=request_client(request), batch_id=batch_id)))


class BatchCancelApi(APIView):
    required_scope = Scope.BATCHES
    problem_statuses = (409,)

    @extend_schema(request=None, responses=BatchDocument, summary="Cancel a batch still in progress")
    def post(self, request: Request, batch_id: str) -> Response:
        batch = batch_for_client(client=request_client(request), batch_id=batch_id)
        return Response(batch_detail(batch_cancel(batch=batch)))


class BatchResultsApi(APIView):
    required_scope = Scope.BATCHES

    @extend_schema(
        responses={(200, "application/x-ndjson"): str},
        summary="One JSON line per item: custom_id, status, output or error",
    )
    def get(self, request: Request, batch_id: str) -> StreamingHttpResponse:
        batch = batch_for_client(client=request_client(request), batch_id=batch_id)
        response = StreamingHttpResponse(batch_results_lines(batch), content_type="application/x-ndjson")
        response["Cache-Control"] = "no-store"
        return response


class RunDetailApi(APIView):
    required_scope = Scope.RUN

    @extend_schema(responses=StoredRun, summary="One of this client's runs (output as stored: redacted)")
    def get(self, request: Request, run_id: str) -> Response:
        client = request_client(request)
        run = Run.objects.filter(public_id=run_id, api_client=client).first()
        if run is None:
            raise RunNotFound(f"This client has no run '{run_id[:40]}'.")
        return Response(run_detail(run))
