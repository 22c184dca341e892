"""An outage of Tollgate's own dependencies — the cache (Redis) restarting, the database failing over — is a
503 `service_unavailable` the caller may retry (`Retry-After`), never a 500, and nothing reaches Anthropic."""

from __future__ import annotations

import socket

import pytest
from django.db import OperationalError
from rest_framework.test import APIRequestFactory

from config.exceptions import problem_exception_handler
from core import hotcache
from tests.gateway.upstream import EMAIL, TICKET, sandbox_requests
from usage.models import UsageRecord

pytestmark = pytest.mark.django_db


@pytest.fixture
def redis_down(settings):
    """The cache and the raw Redis connection (rate limits, the hot caches) pointed at a port nothing
    listens on, as while Redis restarts."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"redis://127.0.0.1:{port}/0"
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": url, "KEY_PREFIX": "tollgate"}
    }
    settings.REDIS_URL = url
    hotcache.redis_client.cache_clear()
    hotcache.clear()
    yield
    hotcache.redis_client.cache_clear()
    hotcache.clear()


@pytest.mark.parametrize("path", ["/api/v1/prompts/support-summary/run", "/anthropic/v1/messages"])
def test_a_run_while_redis_is_down_is_a_503_to_retry_and_reaches_nobody(world, redis_down, path):
    before = len(sandbox_requests(world))
    if path.startswith("/api/"):
        body = {"variables": {"ticket": TICKET, "customer_email": EMAIL}}
    else:
        body = {"model": "prompt:support-summary", "max_tokens": 50, "messages": [{"role": "user", "content": TICKET}]}

    response = world["http"].post(path, body, format="json")

    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    payload = response.json()
    code = payload["code"] if path.startswith("/api/") else payload["error"]["code"]
    assert code == "service_unavailable"
    assert len(sandbox_requests(world)) == before
    assert not UsageRecord.objects.exists()


def test_a_database_outage_in_a_view_is_a_503_too():
    request = APIRequestFactory().get("/api/v1/prompts")

    response = problem_exception_handler(OperationalError("server closed the connection"), {"request": request})

    assert response is not None
    assert response.status_code == 503
    assert response.data["code"] == "service_unavailable"
    assert "server closed" not in str(response.data)  # the cause goes to the log, not to the caller
