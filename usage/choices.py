from __future__ import annotations

from django.db import models


class CapScope(models.TextChoices):
    PROVIDER_KEY = "provider_key", "Provider key"
    API_CLIENT = "api_client", "API client"


class Period(models.TextChoices):
    MONTH = "month", "Month"
    DAY = "day", "Day"


class ReservationStatus(models.TextChoices):
    HELD = "held", "Held"
    SETTLED = "settled", "Settled"
    RELEASED = "released", "Released"


class Endpoint(models.TextChoices):
    RUN = "run", "Run"
    STREAM = "stream", "Stream"
    JOB = "job", "Job"
    BATCH = "batch", "Batch"
    CLASSIFIER = "classifier", "Routing classifier"
    EVALUATION = "evaluation", "Evaluation"
    ANTHROPIC = "anthropic", "Anthropic-compatible"
    COUNT_TOKENS = "count", "Token count"
    PLAYGROUND = "playground", "Playground"


class Outcome(models.TextChoices):
    OK = "ok", "OK"
    RATE_LIMITED = "rate_limited", "Rate limited"
    OVERLOADED = "overloaded", "Overloaded"
    SERVER_ERROR = "server_error", "Server error"
    TIMEOUT = "timeout", "Timeout"
    CLIENT_ERROR = "client_error", "Client error"
    CAP_EXCEEDED = "cap_exceeded", "Cap exceeded"
    # Tollgate itself failed after the reservation (a bug or an outage of its own): the call is recorded
    # and its spend settled all the same.
    INTERNAL_ERROR = "internal_error", "Internal error"


# Failures of Anthropic itself (after the SDK's retries), as dashboards and alerts count them.
UPSTREAM_ERRORS = (Outcome.RATE_LIMITED, Outcome.OVERLOADED, Outcome.SERVER_ERROR, Outcome.TIMEOUT)
