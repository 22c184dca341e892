from __future__ import annotations

import io
import json
import logging

import pytest
from django.conf import settings
from pythonjsonlogger.json import JsonFormatter

from config.logging import RequestContextFilter


def test_healthz_answers_without_touching_dependencies(client):
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_reports_each_dependency(client):
    response = client.get("/readyz")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["cache"] == "ok"
    assert body["checks"]["broker"] == ("ok" if settings.TOLLGATE_BROKER_CONFIGURED else "in-process")


@pytest.mark.django_db
def test_readyz_is_unavailable_when_the_cache_is_down(client, settings):
    # A real Redis client pointed at a port where nothing listens.
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:1/0"}
    }

    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json()["checks"]["cache"].startswith("error: ")
    assert "127.0.0.1:1" not in response.content.decode()


def test_request_id_is_echoed_or_made(client):
    given = client.get("/healthz", HTTP_X_REQUEST_ID="trace-123")
    made = client.get("/healthz")
    unsafe = client.get("/healthz", HTTP_X_REQUEST_ID="bad id\nwith newline")

    assert given["X-Request-ID"] == "trace-123"
    assert len(made["X-Request-ID"]) == 32
    assert unsafe["X-Request-ID"] not in ("bad id\nwith newline", "")


def test_access_log_is_json_with_the_request_id(client):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    json_format = settings.LOGGING["formatters"]["json"]
    handler.setFormatter(JsonFormatter(json_format["fmt"], rename_fields=json_format["rename_fields"]))
    handler.addFilter(RequestContextFilter())
    logger = logging.getLogger("tollgate.request")
    logger.addHandler(handler)
    previous = logger.level
    logger.setLevel(logging.INFO)
    try:
        client.get("/healthz?token=should-not-be-logged", HTTP_X_REQUEST_ID="trace-456")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)

    line = json.loads(stream.getvalue().splitlines()[-1])
    assert line["request_id"] == "trace-456"
    assert line["path"] == "/healthz"
    assert line["status"] == 200
    assert line["level"] == "INFO"
    assert "should-not-be-logged" not in stream.getvalue()
