"""Errors of the prompt registry; each has a stable code (config.errors.DomainError)."""

from __future__ import annotations

from config.errors import DomainError, ReasonRequired, RoleRequired

__all__ = ["ReasonRequired", "RoleRequired"]  # shared with the other apps, re-exported for callers here


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
