"""Signed requests (docs/api.md, "Signed requests") on the REST API: a client that requires them is served
only requests signed with its current secret, in time, once; every refusal has its own code, answers 401
before the body is used, and never reaches the upstream, the ledger or the rate limit."""

from __future__ import annotations

import json
import time
from urllib.parse import quote, unquote, urlsplit

import pytest
from django.core.exceptions import ValidationError
from django.db import transaction
from django.urls import Resolver404, resolve
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from rest_framework.test import APIClient as HttpClient

from audit.models import AuditEvent
from core.errors import ReasonRequired
from core.hotcache import generation_bump
from keys import services
from keys.models import ApiClient
from keys.signing import (
    NONCE_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    canonical_string,
    signature,
    signed_headers,
)
from tests.gateway.upstream import sandbox_requests
from usage.models import UsageRecord

pytestmark = pytest.mark.django_db

RUN = "/api/v1/prompts/support-summary/run"
RUN_BODY = json.dumps(
    {"variables": {"ticket": "The export button does nothing.", "customer_email": "ana@example.com"}}
).encode()
CODES = {"signature_required", "signature_stale", "signature_invalid", "signature_replayed"}


def meta(headers: dict[str, str]) -> dict[str, str]:
    return {"HTTP_" + name.upper().replace("-", "_"): value for name, value in headers.items()}


def send(http, method: str, target: str, body: bytes = b"", headers: dict[str, str] | None = None, **extra):
    return http.generic(method, target, body, content_type="application/json", **meta(headers or {}), **extra)


def sign(secret: str, method: str, target: str, body: bytes = b"", **kwargs) -> dict[str, str]:
    parts = urlsplit(target)
    return signed_headers(secret, method=method, path=unquote(parts.path), query=parts.query, body=body, **kwargs)


def signed(http, secret, method, target, body=b"", **kwargs):
    return send(http, method, target, body, sign(secret, method, target, body, **kwargs))


@pytest.fixture
def signing(world, custodian):
    """The world's client, requiring signed requests, and its signing secret."""
    secret = services.api_client_rotate_signing_secret(actor=custodian, client=world["client"], reason="sign")
    services.api_client_update(actor=custodian, client=world["client"], reason="sign", signature_required=True)
    return {**world, "secret": secret}


def assert_refused(response, code: str) -> None:
    assert response.status_code == 401, response.content
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == code
    assert response["WWW-Authenticate"].startswith("Bearer")


def assert_nothing_reached(world) -> None:
    assert sandbox_requests(world) == []
    assert not UsageRecord.objects.exists()


# --- accepted -------------------------------------------------------------------------------------------


def test_a_signed_run_is_answered(signing):
    response = signed(signing["http"], signing["secret"], "POST", RUN, RUN_BODY)

    assert response.status_code == 200, response.content
    assert response.json()["output"]
    assert len(sandbox_requests(signing)) == 1
    assert UsageRecord.objects.count() == 1


def test_signed_gets_with_a_query_string_are_answered(signing):
    response = signed(signing["http"], signing["secret"], "GET", "/api/v1/usage?group_by=model&from=2026-01-01")

    assert response.status_code == 200, response.content


def test_a_signed_streamed_run_is_answered(signing):
    body = json.dumps({**json.loads(RUN_BODY), "stream": True}).encode()

    response = signed(signing["http"], signing["secret"], "POST", RUN, body)

    assert response.status_code == 200
    events = b"".join(response.streaming_content).decode()
    assert "run.completed" in events


def test_timestamps_within_the_window_either_way_are_accepted(signing, settings):
    settings.TOLLGATE_SIGNATURE_WINDOW_SECONDS = 60
    for skew in (-55, 55):
        response = signed(signing["http"], signing["secret"], "GET", "/api/v1/prompts", now=time.time() + skew)
        assert response.status_code == 200, response.content


def test_a_large_body_is_hashed_as_received(signing, settings):
    """A body near TOLLGATE_MAX_REQUEST_BYTES: verified on its exact bytes, then parsed by the view (which
    refuses the oversized variable: not a signature failure)."""
    body = json.dumps({"variables": {"ticket": "x" * (settings.TOLLGATE_MAX_REQUEST_BYTES - 200)}}).encode()
    assert len(body) <= settings.TOLLGATE_MAX_REQUEST_BYTES
    headers = sign(signing["secret"], "POST", RUN, body)

    accepted = send(signing["http"], "POST", RUN, body, headers)
    altered = send(signing["http"], "POST", RUN, body[:-2] + b" }", sign(signing["secret"], "POST", RUN, body))

    assert accepted.status_code == 400
    assert accepted.json()["code"] == "invalid_variables"
    assert_refused(altered, "signature_invalid")
    assert_nothing_reached(signing)


def test_clients_that_do_not_require_signatures_are_unaffected(world):
    """Without the setting, signature headers, even wrong ones, are neither needed nor looked at."""
    assert world["http"].post(RUN, RUN_BODY, content_type="application/json").status_code == 200
    garbage = {TIMESTAMP_HEADER: "1", NONCE_HEADER: "?", SIGNATURE_HEADER: "v1=nope"}

    assert send(world["http"], "POST", RUN, RUN_BODY, garbage).status_code == 200


# --- refused --------------------------------------------------------------------------------------------


def _case(name: str, secret: str, http) -> object:
    """The response to one way of getting a signature wrong."""
    now = time.time()
    good = sign(secret, "POST", RUN, RUN_BODY)
    cases = {
        "stale": lambda: signed(http, secret, "POST", RUN, RUN_BODY, now=now - 301),
        "future": lambda: signed(http, secret, "POST", RUN, RUN_BODY, now=now + 301),
        "altered body": lambda: send(http, "POST", RUN, RUN_BODY.replace(b"export", b"import"), good),
        "appended body": lambda: send(http, "POST", RUN, RUN_BODY + b" ", good),
        "altered path": lambda: send(http, "POST", RUN.replace("support-summary", "other-prompt"), RUN_BODY, good),
        "added query": lambda: send(http, "POST", RUN + "?a=1", RUN_BODY, good),
        "altered query": lambda: send(
            http, "GET", "/api/v1/usage?group_by=model", b"", sign(secret, "GET", "/api/v1/usage?group_by=day")
        ),
        "altered method": lambda: send(http, "PUT", RUN, RUN_BODY, good),
        "altered timestamp": lambda: send(http, "POST", RUN, RUN_BODY, {**good, TIMESTAMP_HEADER: str(int(now) - 1)}),
        "altered nonce": lambda: send(http, "POST", RUN, RUN_BODY, {**good, NONCE_HEADER: "another-nonce-1"}),
        "wrong secret": lambda: signed(http, "tgsig_" + "A" * 43, "POST", RUN, RUN_BODY),
        "uppercase hex": lambda: send(
            http, "POST", RUN, RUN_BODY, {**good, SIGNATURE_HEADER: good[SIGNATURE_HEADER].upper()}
        ),
        "no version": lambda: send(http, "POST", RUN, RUN_BODY, {**good, SIGNATURE_HEADER: good[SIGNATURE_HEADER][3:]}),
        "timestamp in ms": lambda: signed(http, secret, "POST", RUN, RUN_BODY, now=now * 1000),
        "short nonce": lambda: signed(http, secret, "POST", RUN, RUN_BODY, nonce="abc"),
        "no timestamp": lambda: send(http, "POST", RUN, RUN_BODY, _without(good, TIMESTAMP_HEADER)),
        "no nonce": lambda: send(http, "POST", RUN, RUN_BODY, _without(good, NONCE_HEADER)),
        "no signature": lambda: send(http, "POST", RUN, RUN_BODY, _without(good, SIGNATURE_HEADER)),
        "unsigned": lambda: send(http, "POST", RUN, RUN_BODY),
    }
    return cases[name]()


def _without(headers: dict[str, str], name: str) -> dict[str, str]:
    return {key: value for key, value in headers.items() if key != name}


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("stale", "signature_stale"),
        ("future", "signature_stale"),
        ("timestamp in ms", "signature_stale"),
        ("altered body", "signature_invalid"),
        ("appended body", "signature_invalid"),
        ("altered path", "signature_invalid"),
        ("added query", "signature_invalid"),
        ("altered query", "signature_invalid"),
        ("altered method", "signature_invalid"),
        ("altered timestamp", "signature_invalid"),
        ("altered nonce", "signature_invalid"),
        ("wrong secret", "signature_invalid"),
        ("uppercase hex", "signature_invalid"),
        ("no version", "signature_invalid"),
        ("short nonce", "signature_invalid"),
        ("no timestamp", "signature_required"),
        ("no nonce", "signature_required"),
        ("no signature", "signature_required"),
        ("unsigned", "signature_required"),
    ],
)
def test_a_wrong_signature_is_refused_with_its_code(signing, case, code):
    assert_refused(_case(case, signing["secret"], signing["http"]), code)
    assert_nothing_reached(signing)


def test_a_signature_is_accepted_once(signing):
    headers = sign(signing["secret"], "POST", RUN, RUN_BODY)

    first = send(signing["http"], "POST", RUN, RUN_BODY, headers)
    again = send(signing["http"], "POST", RUN, RUN_BODY, headers)

    assert first.status_code == 200
    assert_refused(again, "signature_replayed")
    assert len(sandbox_requests(signing)) == 1
    assert UsageRecord.objects.count() == 1


def test_a_refused_signature_is_not_remembered(signing):
    """Only an accepted signature uses up its headers: one refused for another reason does not block the
    same signature on the request it was made for."""
    headers = sign(signing["secret"], "POST", RUN, RUN_BODY)
    assert_refused(send(signing["http"], "POST", RUN, RUN_BODY + b"\n", headers), "signature_invalid")

    assert send(signing["http"], "POST", RUN, RUN_BODY, headers).status_code == 200


def test_after_a_rotation_the_old_secret_is_refused(signing, custodian):
    assert signed(signing["http"], signing["secret"], "GET", "/api/v1/prompts").status_code == 200  # cached now

    new = services.api_client_rotate_signing_secret(actor=custodian, client=signing["client"], reason="leaked")

    assert new != signing["secret"]
    assert_refused(signed(signing["http"], signing["secret"], "GET", "/api/v1/prompts"), "signature_invalid")
    assert signed(signing["http"], new, "GET", "/api/v1/prompts").status_code == 200


def test_turning_the_requirement_off_takes_effect_on_the_next_request(signing, custodian):
    assert_refused(send(signing["http"], "GET", "/api/v1/prompts"), "signature_required")

    services.api_client_update(actor=custodian, client=signing["client"], reason="x", signature_required=False)

    assert send(signing["http"], "GET", "/api/v1/prompts").status_code == 200


def test_refused_signatures_do_not_use_up_the_rate_limit(signing, custodian, one_rate_window):
    services.api_client_update(actor=custodian, client=signing["client"], reason="x", rate_limit_per_minute=1)
    for _ in range(3):  # the first puts the token in the hot cache: the others take the counting path
        assert_refused(send(signing["http"], "POST", RUN, RUN_BODY), "signature_required")

    assert signed(signing["http"], signing["secret"], "POST", RUN, RUN_BODY).status_code == 200
    over = signed(signing["http"], signing["secret"], "POST", RUN, RUN_BODY)
    assert over.status_code == 429  # the accepted one counted


def test_the_schema_needs_a_signature_too(signing):
    refused = send(signing["http"], "GET", "/api/schema/")  # the problem, in the schema's own format (YAML)

    assert refused.status_code == 401
    assert b"signature_required" in refused.content
    assert signed(signing["http"], signing["secret"], "GET", "/api/schema/").status_code == 200


def test_the_worked_example_of_the_documentation():
    """docs/api.md, "Signed requests": the canonical string and the signature, byte for byte."""
    canonical = canonical_string(
        method="post",
        path="/api/v1/prompts/support-summary/run",
        query="",
        timestamp="1767225600",
        nonce="8f7a1c2e9b3d4a5f",
        body=b'{"variables": {"ticket": "Export fails"}}',
    )

    assert canonical == (
        b"tollgate-v1\nPOST\n/api/v1/prompts/support-summary/run\n1767225600\n8f7a1c2e9b3d4a5f\n"
        b"3e76c3d845c92670cb93da72a6e80ac522796999ea03c2fcb802723450de607a"
    )
    assert (
        signature("tgsig_3hJ9x2kQpV7mN4rT8wY1zA6bC5dE0fG2hI4jK6lM8nO", canonical)
        == "v1=0b537295ba167dee4bbadeacd2bd7ca74d2cefecf4730111af1351a003d11947"
    )


def test_the_path_is_signed_encoded_one_way_and_the_query_as_sent():
    def target(path: str, query: str) -> bytes:
        return canonical_string(method="GET", path=path, query=query, timestamp="1", nonce="n" * 8, body=b"").split(
            b"\n"
        )[2]

    assert target("/a b/\u00e9", "") == b"/a%20b/%C3%A9"
    assert target("/api/v1/usage", "group_by=model&from=2026-01-01") == b"/api/v1/usage?group_by=model&from=2026-01-01"
    assert target("/x", "q=a%20b") == b"/x?q=a%20b"


def test_a_percent_encoded_path_is_the_same_request(signing):
    """Tollgate sees the decoded path: a path sent with its characters percent-encoded is the one signed."""
    headers = sign(signing["secret"], "GET", "/api/v1/prompts/support-summary")

    response = send(signing["http"], "GET", "/api/v1/prompts/support%2Dsummary", b"", headers)

    assert response.status_code == 200, response.content


# --- the setting and the secret ---------------------------------------------------------------------------


def test_requiring_signatures_needs_a_secret_and_is_audited(world, custodian):
    with pytest.raises(ValidationError) as refused:
        services.api_client_update(actor=custodian, client=world["client"], reason="x", signature_required=True)
    assert "signature_required" in refused.value.message_dict

    services.api_client_rotate_signing_secret(actor=custodian, client=world["client"], reason="first secret")
    services.api_client_update(actor=custodian, client=world["client"], reason="harden", signature_required=True)

    event = AuditEvent.objects.filter(action="api_client.update").latest("pk")
    assert event.changes["signature_required"] == [False, True]
    assert event.reason == "harden"


def test_the_secret_is_sealed_audited_and_never_stored_in_clear(world, custodian):
    with pytest.raises(ReasonRequired):
        services.api_client_rotate_signing_secret(actor=custodian, client=world["client"], reason=" ")

    first = services.api_client_rotate_signing_secret(actor=custodian, client=world["client"], reason="one")
    second = services.api_client_rotate_signing_secret(actor=custodian, client=world["client"], reason="two")

    client = ApiClient.objects.get(pk=world["client"].pk)
    assert first.startswith("tgsig_")
    assert second.startswith("tgsig_")
    assert first != second
    assert services.api_client_signing_secret(client=client) == second
    assert second not in client.signing_secret_ciphertext
    events = AuditEvent.objects.filter(action="api_client.signing_secret_rotate").order_by("pk")
    assert [event.changes["replaced"] for event in events] == [False, True]
    assert [event.reason for event in events] == ["one", "two"]
    stored = json.dumps(
        [
            list(AuditEvent.objects.values()),
            list(ApiClient.history.values()),
        ],
        default=str,
    )
    for secret in (first, second):
        assert secret not in stored
    assert "signing_secret_ciphertext" not in stored


def test_the_secret_is_bound_to_its_client(world, custodian):
    """A ciphertext copied onto another client does not unseal there: its requests are refused."""
    other, _ = services.api_client_create(actor=custodian, name="other", environment="production", owner=custodian)
    services.api_client_rotate_signing_secret(actor=custodian, client=other, reason="x")
    services.api_client_rotate_signing_secret(actor=custodian, client=world["client"], reason="x")
    stolen = ApiClient.objects.get(pk=other.pk)
    ApiClient.objects.filter(pk=world["client"].pk).update(
        signing_secret_ciphertext=stolen.signing_secret_ciphertext,
        signing_secret_kek_id=stolen.signing_secret_kek_id,
        signature_required=True,
    )
    generation_bump()
    response = signed(world["http"], services.api_client_signing_secret(client=stolen), "GET", "/api/v1/prompts")

    assert_refused(response, "signature_invalid")
    assert AuditEvent.objects.filter(action="security.decryption_failed").exists()


# --- generated attacks ------------------------------------------------------------------------------------

SETTINGS = hypothesis_settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,
)

_text = st.text(min_size=1, max_size=8)


@st.composite
def mutations(draw):
    """One change to a signed request: (what, how) applied by `_mutate`."""
    return draw(
        st.one_of(
            st.tuples(st.just("method"), st.sampled_from(["GET", "PUT", "PATCH", "DELETE"])),
            st.tuples(st.just("slug"), st.from_regex(r"[a-z0-9-]{1,12}", fullmatch=True)),
            st.tuples(st.just("path"), _text),
            st.tuples(st.just("query"), st.from_regex(r"[a-z]{1,5}=[a-z0-9%]{0,6}", fullmatch=True)),
            st.tuples(st.just("timestamp"), st.integers(-(10**7), 10**7).filter(lambda delta: delta != 0)),
            st.tuples(st.just("timestamp text"), st.text(max_size=14)),
            st.tuples(st.just("nonce"), st.text(max_size=20)),
            st.tuples(st.just("body"), st.binary(min_size=1, max_size=12)),
            st.tuples(st.just("truncate body"), st.integers(1, 40)),
            st.tuples(st.just("signature"), st.integers(0, 66)),
            st.tuples(st.just("signature text"), st.text(max_size=70)),
            st.tuples(st.just("drop"), st.sampled_from([TIMESTAMP_HEADER, NONCE_HEADER, SIGNATURE_HEADER])),
        )
    )


def _mutate(mutation, method, target, body, headers):
    what, how = mutation
    headers = dict(headers)
    if what == "method":
        method = how
    elif what == "slug":
        target = target.replace("support-summary", how if how != "support-summary" else "support-summary-2")
    elif what == "path":
        target = target + quote(how, safe="")
    elif what == "query":
        target = f"{target}?{how}"
    elif what == "timestamp":
        headers[TIMESTAMP_HEADER] = str(int(headers[TIMESTAMP_HEADER]) + how)
    elif what == "timestamp text":
        headers[TIMESTAMP_HEADER] = how if how != headers[TIMESTAMP_HEADER] else how + "0"
    elif what == "nonce":
        headers[NONCE_HEADER] = how if how != headers[NONCE_HEADER] else how + "x"
    elif what == "body":
        body = body[: len(body) // 2] + how + body[len(body) // 2 :]
    elif what == "truncate body":
        body = body[:-how]
    elif what == "signature":
        value = headers[SIGNATURE_HEADER]
        flipped = "0" if value[how % len(value)] != "0" else "1"
        headers[SIGNATURE_HEADER] = value[: how % len(value)] + flipped + value[how % len(value) + 1 :]
    elif what == "signature text":
        headers[SIGNATURE_HEADER] = how if how != headers[SIGNATURE_HEADER] else how + "0"
    elif what == "drop":
        del headers[how]
    return method, target, body, headers


def _routed(target: str) -> bool:
    """Whether an endpoint answers at the target's path (not the catch-all 404 of /api/)."""
    try:
        match = resolve(urlsplit(target).path)
    except Resolver404:
        return False
    return match.url_name != "api-not-found"


def test_any_change_to_a_signed_request_is_refused_with_a_documented_code(signing):
    @SETTINGS
    @given(mutation=mutations())
    def check(mutation):
        signing["sandbox"].call(lambda state: state.reset())
        headers = sign(signing["secret"], "POST", RUN, RUN_BODY)
        method, target, body, sent = _mutate(mutation, "POST", RUN, RUN_BODY, headers)
        sent = {name: value for name, value in sent.items() if _header_safe(value)}
        with transaction.atomic():
            try:
                http = HttpClient()
                http.credentials(HTTP_AUTHORIZATION=signing["http"]._credentials["HTTP_AUTHORIZATION"])
                response = send(http, method, target, body, sent)
                assert response.status_code < 500, response.content
                code = response.json()["code"]
                if _routed(target) and urlsplit(target).path.startswith("/api/v1/"):
                    assert response.status_code == 401, (mutation, response.content)
                    assert code in CODES
                else:  # a path that names no endpoint is answered before authentication
                    assert (response.status_code, code) == (404, "not_found")
                assert_nothing_reached(signing)
            finally:
                transaction.set_rollback(True)

    check()


def _header_safe(value: str) -> bool:
    """What an HTTP client can send as a header value at all (a line break cannot be sent)."""
    return "\n" not in value and "\r" not in value and "\x00" not in value
