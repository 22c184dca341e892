"""The Anthropic-compatible endpoint's tests: the official SDK is the client, served by Tollgate in this
process (an httpx WSGI transport, so the test's database transaction is the server's), Tollgate's
upstream the sandbox."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import anthropic
import httpx2
import pytest
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections

from keys import services as key_services


@pytest.fixture
def wsgi() -> Iterator[WSGIHandler]:
    # As Django's test client does: neither the start nor the end of a request may close the test's
    # connection (on PostgreSQL it would be closed inside the test's transaction).
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield WSGIHandler()
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.fixture
def sdk(world, wsgi, custodian) -> Callable[..., anthropic.Anthropic]:
    """An SDK client of an API client of the world (the world's own by default), as its code would make it."""

    def make(client=None, *, token: str | None = None, **kwargs) -> anthropic.Anthropic:
        if token is None:
            _, token = key_services.api_token_issue(actor=custodian, client=client or world["client"], label="sdk")
        return anthropic.Anthropic(
            api_key=token,
            base_url="http://testserver/anthropic",
            http_client=httpx2.Client(transport=httpx2.WSGITransport(app=wsgi)),
            max_retries=kwargs.pop("max_retries", 0),
            **kwargs,
        )

    return make


@pytest.fixture
def freeform_client(world, custodian):
    client, _ = key_services.api_client_create(
        actor=custodian,
        name="agent",
        environment="production",
        owner=custodian,
        rate_limit_per_minute=1000,
        freeform=True,
        freeform_models=["claude-haiku-4-5", "claude-sonnet-4-6"],
        freeform_max_tokens=1000,
    )
    return client
