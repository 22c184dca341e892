"""Liveness and readiness probes for load balancers and orchestrators."""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from config.celery_app import app as celery_app
from usage.heartbeat import worker_last_seen

logger = logging.getLogger(__name__)


@require_GET
@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """The process is alive and serving; says nothing of its dependencies."""
    return JsonResponse({"status": "ok"})


def _check_database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return "ok"


def _check_cache() -> str:
    cache.set("readyz", "ok", timeout=10)
    if cache.get("readyz") != "ok":
        raise RuntimeError("cache did not return what was written")
    return "ok"


def _check_broker() -> str:
    if not settings.TOLLGATE_BROKER_CONFIGURED:
        return "in-process"
    with celery_app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)
    return "ok"


CHECKS: dict[str, Callable[[], str]] = {"database": _check_database, "cache": _check_cache, "broker": _check_broker}


@require_GET
@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    """200 when the database, the cache and the broker answer; 503 naming what does not."""
    results: dict[str, str] = {}
    for name, check in CHECKS.items():
        try:
            results[name] = check()
        except Exception as exc:  # any failure means "not ready"; the class says enough, a URL could leak
            logger.warning("readiness check %s failed: %s", name, type(exc).__name__)
            results[name] = f"error: {type(exc).__name__}"
    ready = all(not value.startswith("error") for value in results.values())
    try:
        last_seen = worker_last_seen()
    except Exception:  # the cache is down: already reported above
        last_seen = None
    return JsonResponse(
        {
            "status": "ok" if ready else "unavailable",
            "checks": results,
            # Informational: a missing worker delays queued work but does not make this process unready.
            "worker_last_seen": last_seen.isoformat() if last_seen else None,
        },
        status=200 if ready else 503,
    )
