"""Logging helpers: every record carries the id of the request it belongs to."""

from __future__ import annotations

import logging

from core.context import current_request_id


class RequestContextFilter(logging.Filter):
    """Adds `request_id` to every record (`-` outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = current_request_id() or "-"
        return True


# The HTTP clients under the Anthropic SDK log whole requests — bodies included — at DEBUG, and so does
# Django's SQL log (query parameters). Nothing at any level may print a body: those records are dropped,
# whatever level the loggers were set to (the SDK sets its own from ANTHROPIC_LOG when it is imported).
_BODY_LOGGERS = ("anthropic", "httpx", "httpx2", "httpcore", "urllib3", "django.db.backends")


class NoRequestBodiesFilter(logging.Filter):
    """Drops records below INFO from the HTTP client libraries and the SQL log, which would print bodies."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.INFO:
            return True
        name = record.name
        return not any(name == prefix or name.startswith(prefix + ".") for prefix in _BODY_LOGGERS)
