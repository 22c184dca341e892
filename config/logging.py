"""Logging helpers: every record carries the id of the request it belongs to."""

from __future__ import annotations

import logging

from audit.context import current_request_id


class RequestContextFilter(logging.Filter):
    """Adds `request_id` to every record (`-` outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = current_request_id() or "-"
        return True
