"""Every error a caller can act on, in one table: each has a stable `code` (docs/contract.md §6), documented in the
API reference, and is mapped to HTTP in one place (config/exceptions.py)."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Base of every error a service raises for its caller to handle.

    `detail` is a sentence a person can read; it must never contain a secret or a redacted value.
    """

    code = "invalid_request"
    title = "Invalid request"
    status = 400

    def __init__(self, detail: str, *, extra: dict[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra or {}


class RoleRequired(DomainError):
    """The actor lacks the role (permission) for what they tried."""

    code = "permission_denied"
    title = "Permission denied"
    status = 403


class ReasonRequired(DomainError):
    code = "reason_required"
    title = "Reason required"
    status = 400


class RequestTooLarge(DomainError):
    """A body over TOLLGATE_MAX_REQUEST_BYTES: refused before it is read."""

    code = "request_too_large"
    title = "Request too large"
    status = 413


# The prompt registry
class ImmutableVersion(DomainError):
    code = "version_immutable"
    title = "Version is immutable"
    status = 409


class IllegalTransition(DomainError):
    code = "illegal_transition"
    title = "Transition not allowed"
    status = 409


class FourEyesViolation(DomainError):
    code = "four_eyes_violation"
    title = "Author cannot review"
    status = 403


class InvalidVersion(DomainError):
    """The content of a version is not valid: `errors` maps each field to its problems."""

    code = "invalid_version"
    title = "Invalid prompt version"
    status = 400

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("The version has invalid content; see `errors`.", extra={"errors": errors})
        self.errors = errors


class InvalidVariables(DomainError):
    """Variables that do not fit the version's schema: one message per variable."""

    code = "invalid_variables"
    title = "Invalid variables"
    status = 400

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("Some variables are missing, unknown or invalid; see `errors`.", extra={"errors": errors})
        self.errors = errors


class PromptNotFound(DomainError):
    code = "prompt_not_found"
    title = "Prompt not found"
    status = 404


class VersionTampered(DomainError):
    """A version's content no longer matches its hash: it was changed outside the application."""

    code = "version_tampered"
    title = "Prompt version failed its integrity check"
    status = 500


class UnreadableSetting(DomainError):
    """A stored version's routing, output checks or redaction that its spec refuses (saved before the
    spec was as strict). Tollgate's fault, not the caller's: a corrected version must be released."""

    code = "internal_error"
    title = "Prompt version setting unreadable"
    status = 500


class RunNotFound(DomainError):
    code = "not_found"
    title = "Run not found"
    status = 404


class EvaluationRequired(DomainError):
    """TOLLGATE_APPROVAL_REQUIRES_EVALUATION is on and the version has no passing evaluation of its content."""

    code = "evaluation_required"
    title = "A passing evaluation is required"
    status = 409


class NoEvaluationCases(DomainError):
    code = "no_evaluation_cases"
    title = "The prompt has no evaluation cases"
    status = 409


class InvalidEvaluationCase(DomainError):
    """An evaluation case that cannot run: `errors` maps each field to its problems."""

    code = "invalid_evaluation_case"
    title = "Invalid evaluation case"
    status = 400

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("The evaluation case is invalid; see `errors`.", extra={"errors": errors})
        self.errors = errors


# Usage and spend
ADVERB = {"month": "monthly", "day": "daily"}


class ModelNotPriced(DomainError):
    code = "model_not_priced"
    title = "Model has no price"
    status = 400


class SpendCapExceeded(DomainError):
    """A reservation would push a cap over its limit. `cap` names which one; the remaining balance is
    not disclosed."""

    code = "spend_cap_exceeded"
    title = "Spend cap exceeded"
    status = 402

    def __init__(self, *, cap: str, label: str, period: str) -> None:
        super().__init__(
            f"This request could cost more than what is left of the {ADVERB[period]} {label} spend cap.",
            extra={"cap": cap, "period": period},
        )


# Keys and API clients
class KeyOperationRefused(DomainError):
    code = "invalid_request"
    title = "Key operation refused"
    status = 400


class AuthenticationFailed(DomainError):
    """`reason`: malformed, unknown, revoked, expired, client_inactive or client_expired."""

    code = "authentication_failed"
    title = "Authentication failed"
    status = 401

    def __init__(self, detail: str, *, reason: str) -> None:
        super().__init__(detail, extra={"reason": reason})
        self.reason = reason


class ScopeRequired(DomainError):
    """The API client's scopes do not include the one this endpoint requires (`scope`)."""

    code = "scope_required"
    title = "Scope required"
    status = 403

    def __init__(self, detail: str, *, scope: str | None) -> None:
        super().__init__(detail, extra={"scope": scope})


class NetworkNotAllowed(DomainError):
    """The request comes from an address outside the API client's networks."""

    code = "network_not_allowed"
    title = "Network not allowed"
    status = 403


class SignatureRefused(DomainError):
    """A request of an API client that requires signed requests, refused for its signature (docs/api.md,
    "Signed requests"). Authentication: 401, before the body is used and before the rate limit counts."""

    status = 401


class SignatureRequired(SignatureRefused):
    """The client requires signed requests and this one lacks a signature header."""

    code = "signature_required"
    title = "Signature required"


class SignatureStale(SignatureRefused):
    """The signed timestamp is further from now than TOLLGATE_SIGNATURE_WINDOW_SECONDS, either way."""

    code = "signature_stale"
    title = "Signature outside its time window"


class SignatureInvalid(SignatureRefused):
    """A malformed signature header, or a signature that does not match the request under the client's secret."""

    code = "signature_invalid"
    title = "Signature invalid"


class SignatureReplayed(SignatureRefused):
    """A signature that was already accepted: each signed request is accepted once."""

    code = "signature_replayed"
    title = "Signature replayed"


# Identity and access
class SecondAdministratorRequired(DomainError):
    """A grant of access (a role, a permission, superuser status) or a password set on someone else's
    privileged account, attempted outside the access-request flow."""

    code = "second_administrator_required"
    title = "A second administrator must approve this"
    status = 403


class AccessRequestRefused(DomainError):
    """An access request that cannot be made, approved or rejected as asked."""

    code = "access_request_refused"
    title = "Access request refused"
    status = 409


class SingleSignOnRefused(DomainError):
    """A single sign-on whose claims cannot be accepted: no role mapped, an unusable or taken user name,
    a deactivated account (docs/admin.md, Single sign-on)."""

    code = "sso_refused"
    title = "Single sign-on refused"
    status = 403


# The gateway: runs, jobs, batches, webhooks


class UpstreamNotAllowed(DomainError):
    """The environment's provider key points at a host outside TOLLGATE_UPSTREAM_BASE_URLS: it is not sent."""

    code = "upstream_not_allowed"
    title = "Upstream not allowed"
    status = 502


class UpstreamError(DomainError):
    """Anthropic failed after the SDK's retries; status and code per docs/contract.md §6."""

    def __init__(self, detail: str, *, status: int, code: str, title: str, retry_after: int | None = None) -> None:
        super().__init__(detail)
        self.status, self.code, self.title = status, code, title
        self.retry_after = retry_after


class NoProviderKey(DomainError):
    code = "upstream_error"
    title = "No provider key"
    status = 502


class ServiceUnavailable(DomainError):
    """Tollgate's own database or cache (Redis) did not answer: nothing was sent upstream for this request
    unless its ledger row says so; retrying after `Retry-After` is safe."""

    code = "service_unavailable"
    title = "Service unavailable"
    status = 503

    def __init__(self, detail: str = "", *, retry_after: int = 5) -> None:
        super().__init__(
            detail or "A service Tollgate depends on (its database or cache) is not answering; retry shortly."
        )
        self.retry_after = retry_after


class InternalError(DomainError):
    """A fault of Tollgate's own, told to a stream's caller as its `error` event."""

    code = "internal_error"
    title = "Internal error"
    status = 500


class RateLimited(DomainError):
    code = "rate_limited"
    title = "Rate limited"
    status = 429

    def __init__(self, retry_after: int, detail: str = "") -> None:
        super().__init__(detail or f"This API client is over its rate limit; retry in {retry_after} s.")
        self.retry_after = retry_after


class IdempotencyConflict(DomainError):
    code = "idempotency_conflict"
    title = "Idempotency conflict"
    status = 409


class JobNotFound(DomainError):
    code = "not_found"
    title = "Job not found"
    status = 404


class JobExpired(DomainError):
    code = "job_expired"
    title = "Job expired"
    status = 410


class BatchNotFound(DomainError):
    code = "not_found"
    title = "Batch not found"
    status = 404


class BatchNotCancelable(DomainError):
    code = "illegal_transition"
    title = "Batch cannot be canceled"
    status = 409


class EgressRefused(DomainError):
    """A callback URL Tollgate will not send to. `reason` is what a delivery records: blocked_url,
    blocked_host (not in the allow-list) or blocked_address; the detail never names a resolved address."""

    code = "invalid_request"
    title = "Invalid request"
    status = 400

    def __init__(self, reason: str, problem: str) -> None:
        super().__init__(f"callback_url {problem}.", extra={"errors": {"callback_url": problem}})
        self.reason = reason


# The Anthropic-compatible endpoint (docs/anthropic.md)
class FreeformNotAllowed(DomainError):
    """A call that names a model instead of a prompt (`prompt:<slug>`), from a client not allowed free-form calls."""

    code = "freeform_not_allowed"
    title = "Free-form calls not allowed"
    status = 403


class ModelNotAllowed(DomainError):
    """A free-form call naming a model outside its client's allowed models."""

    code = "model_not_allowed"
    title = "Model not allowed"
    status = 403


class ModelNotFound(DomainError):
    """GET /anthropic/v1/models/{id} for a model this client may not name."""

    code = "model_not_found"
    title = "Model not found"
    status = 404


class MediaNotAllowed(DomainError):
    """An image or document block from a client not allowed them (personal data in them cannot be redacted)."""

    code = "media_not_allowed"
    title = "Images and documents not allowed"
    status = 403


class SystemPromptRefused(DomainError):
    """A prompt-bound call that sends its own `system`: the approved version's system prompt is the one used."""

    code = "system_prompt_refused"
    title = "System prompt refused"
    status = 400


class UpstreamRefused(DomainError):
    """Anthropic refused a caller's body as invalid (the compatible endpoint: the caller wrote the body)."""

    code = "upstream_refused"
    title = "Refused by Anthropic"
    status = 400


class UnsupportedField(DomainError):
    """A Messages API field Tollgate does not pass on (or not in this mode)."""

    code = "unsupported_field"
    title = "Unsupported field"
    status = 400


class VerificationRequired(DomainError):
    """A signed-in person who must use a second factor has not verified this session (core/mfa.py)."""

    code = "mfa_required"
    title = "Two-factor verification required"
    status = 403


class MfaRefused(DomainError):
    """An enrolment, a verification or a reset of two-factor devices that cannot be done as asked."""

    code = "mfa_refused"
    title = "Two-factor authentication refused"
    status = 400
