"""The OpenAPI schema documents every error an operation can answer, as the problem body it is.

One AutoSchema for the whole API (REST_FRAMEWORK's DEFAULT_SCHEMA_CLASS). The errors every operation
can meet follow from the operation itself: a malformed request (400), no or a bad token (401), a scope or
network the API client lacks (403), an `Accept` it cannot serve (406), a body over the limit (413), a bug
(500); a body of the wrong media type (415) where it takes a body; an unknown id (404) where its path has
one. What only the view knows — a
permission check, a cap, a rate limit, a conflict, the upstream — it declares as `problem_statuses`.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import ResolvedComponent

from core.problems import PROBLEM_CONTENT_TYPE
from core.serializers import StrictInputSerializer

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "An error, as RFC 9457 problem details; `code` is stable (docs/api.md, Errors).",
    "properties": {
        "type": {"type": "string", "description": "`/api/docs/errors#<code>`"},
        "title": {"type": "string"},
        "status": {"type": "integer", "description": "The HTTP status, repeated."},
        "detail": {"type": "string", "description": "A sentence for people; never a secret or redacted value."},
        "code": {"type": "string", "description": "Stable machine-readable code."},
        "request_id": {"type": "string", "nullable": True, "description": "Also sent as X-Request-ID."},
        "errors": {"description": "400: what is wrong with each field or variable."},
        "reason": {"type": "string", "description": "401: which check of the token failed."},
        "scope": {"type": "string", "description": "403 `scope_required`: the scope the endpoint requires."},
        "cap": {"type": "string", "description": "402: which cap (`provider_key` or `api_client`)."},
        "period": {"type": "string", "description": "402: the cap's period (`month` or `day`)."},
    },
    "required": ["type", "title", "status", "detail", "code", "request_id"],
}

# What each status means for an API caller (the response's description in the schema).
PROBLEM_STATUSES: dict[int, str] = {
    400: "Malformed request or invalid fields (`invalid_request`, `invalid_variables`, `model_not_priced`)",
    401: "No token, or a token refused (`authentication_failed`, with `reason`); for a client that requires signed "
    "requests, a signature missing, out of its time window, wrong or replayed (`signature_required`, "
    "`signature_stale`, `signature_invalid`, `signature_replayed`)",
    402: "A spend cap would be exceeded (`spend_cap_exceeded`, with `cap` and `period`)",
    403: "This API client may not do this (`permission_denied`), its scopes do not include the endpoint's "
    "(`scope_required`) or the request comes from outside its networks (`network_not_allowed`)",
    404: "No such resource (`not_found`, `prompt_not_found`)",
    406: "The `Accept` header names nothing this endpoint answers (`not_acceptable`)",
    409: "Conflict (`idempotency_conflict`, `illegal_transition`)",
    413: "The body is larger than TOLLGATE_MAX_REQUEST_BYTES (`request_too_large`)",
    415: "The body is not `application/json` (`unsupported_media_type`)",
    429: "Over the client's rate limit (`rate_limited`); see `Retry-After`",
    500: "A fault on our side (`internal_error`, `version_tampered`)",
    502: "Anthropic failed after retries, or no provider key (`upstream_error`)",
    503: "Anthropic overloaded or rate limited after retries (`upstream_overloaded`, `upstream_rate_limited`), or "
    "Tollgate's database or cache not answering (`service_unavailable`)",
    504: "Anthropic did not answer in time (`upstream_timeout`)",
}
_RETRY_AFTER = {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait before retrying."}}
_EVERY_OPERATION = (400, 401, 403, 406, 413, 500)  # 403: every endpoint requires a scope


class ProblemAutoSchema(AutoSchema):
    """drf-spectacular's AutoSchema, plus the problem responses of each operation."""

    def _map_serializer(self, serializer: Any, direction: str, bypass_extensions: bool = False) -> dict[str, Any]:
        schema: dict[str, Any] = super()._map_serializer(serializer, direction, bypass_extensions)  # type: ignore[no-untyped-call]
        if isinstance(serializer, StrictInputSerializer) or (
            isinstance(serializer, type) and issubclass(serializer, StrictInputSerializer)
        ):
            schema["additionalProperties"] = False
        return schema

    def get_operation(self, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
        operation: dict[str, Any] | None = super().get_operation(*args, **kwargs)
        if operation is None:
            return None
        statuses = set(_EVERY_OPERATION) | set(getattr(self.view, "problem_statuses", ()))
        if "requestBody" in operation:
            statuses.add(415)
        if any(parameter.get("in") == "path" for parameter in operation.get("parameters", [])):
            statuses.add(404)
        component = ResolvedComponent(  # type: ignore[no-untyped-call]
            name="Problem", type=ResolvedComponent.SCHEMA, object="Problem", schema=PROBLEM_SCHEMA
        )
        self.registry.register_on_missing(component)
        responses = operation.setdefault("responses", {})
        for status in sorted(statuses):
            response: dict[str, Any] = {
                "description": PROBLEM_STATUSES[status],
                "content": {PROBLEM_CONTENT_TYPE: {"schema": component.ref}},
            }
            if status in (429, 503):
                response["headers"] = _RETRY_AFTER
            responses.setdefault(str(status), response)
        return operation
