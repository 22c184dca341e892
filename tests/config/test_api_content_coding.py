"""A request body in a content coding the API does not decode is refused, not read as if it were plain."""

from __future__ import annotations

import json

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db

RUN = "/api/v1/prompts/support-summary/run"
BODY = json.dumps({"variables": {"ticket": "hi", "customer_email": "a@b.co"}}).encode()


@pytest.mark.parametrize("coding", ["gzip", "br", "x-unknown"])
def test_a_body_in_a_content_coding_the_api_does_not_decode_is_refused(api_world, coding):
    """`Content-Encoding: gzip` says the body is compressed; the API does not decode it, and runs the body
    as if it were plain (RFC 9110 §8.4.1: answer 415 for a coding not understood). A client (or a proxy)
    that compresses gets a 400 for "malformed JSON" at best, a run of something else at worst."""
    response = Client().generic(
        "POST", RUN, BODY, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {api_world['token']}",
        HTTP_CONTENT_ENCODING=coding,
    )  # fmt: skip
    assert response.status_code == 415, response.status_code
    assert response["Content-Type"].startswith("application/problem+json")
