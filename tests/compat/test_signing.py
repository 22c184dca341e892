"""Signed requests through the official SDK on the Anthropic-compatible endpoint: `keys.signing.TollgateSigner`
as the httpx2 client's auth signs every request, each retry afresh; refusals come back in Anthropic's shape
as AuthenticationError with Tollgate's code, and reach neither the upstream nor the ledger."""

from __future__ import annotations

import time

import anthropic
import httpx2
import pytest

from keys import services as key_services
from keys.signing import NONCE_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, TollgateSigner
from tests.gateway.upstream import PHONE, TICKET, sandbox_requests
from usage.models import UsageRecord

pytestmark = pytest.mark.django_db

CALL = {"model": "prompt:support-summary", "max_tokens": 200, "messages": [{"role": "user", "content": TICKET}]}


@pytest.fixture
def signing(world, custodian):
    secret = key_services.api_client_rotate_signing_secret(actor=custodian, client=world["client"], reason="sign")
    key_services.api_client_update(actor=custodian, client=world["client"], reason="sign", signature_required=True)
    _, token = key_services.api_token_issue(actor=custodian, client=world["client"], label="sdk")
    return {**world, "secret": secret, "token": token}


class Recording(httpx2.BaseTransport):
    """Passes requests to Tollgate in this process, keeping each one's signature headers. With `drop_first`,
    the first attempt reaches Tollgate and is answered there, but the connection then drops before the
    answer arrives (so the SDK retries a request Tollgate has served); with `reuse_first`, every later
    attempt is sent with the first attempt's headers, as a signer that signed once per call would."""

    def __init__(self, wsgi, *, drop_first: bool = False, reuse_first: bool = False) -> None:
        self.inner = httpx2.WSGITransport(app=wsgi)
        self.drop_first, self.reuse_first = drop_first, reuse_first
        self.sent: list[dict[str, str]] = []

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        names = (TIMESTAMP_HEADER, NONCE_HEADER, SIGNATURE_HEADER)
        if self.reuse_first and self.sent:
            for name in names:
                request.headers[name] = self.sent[0][name]
        self.sent.append({name: request.headers[name] for name in names if name in request.headers})
        response = self.inner.handle_request(request)
        if self.drop_first and len(self.sent) == 1:
            response.read()
            raise httpx2.ReadError("the connection dropped", request=request)
        return response


def signed_sdk(signing, wsgi, *, secret=None, transport=None, max_retries=0, clock=time.time):
    return anthropic.Anthropic(
        api_key=signing["token"],
        base_url="http://testserver/anthropic",
        http_client=httpx2.Client(
            transport=transport or httpx2.WSGITransport(app=wsgi),
            auth=TollgateSigner(secret or signing["secret"], clock=clock),
        ),
        max_retries=max_retries,
    )


def refused(client, code, **call):
    with pytest.raises(anthropic.AuthenticationError) as caught:
        client.messages.create(**{**CALL, **call})
    error = caught.value
    assert error.status_code == 401
    assert error.body["error"]["type"] == "authentication_error"
    assert error.body["error"]["code"] == code
    return error


def test_the_sdk_with_the_signer_works_unchanged(signing, wsgi):
    client = signed_sdk(signing, wsgi)

    message = client.messages.create(**CALL)
    assert PHONE in message.content[0].text
    with client.messages.stream(**CALL) as stream:
        text = "".join(stream.text_stream)
    assert PHONE in text
    assert client.messages.count_tokens(model=CALL["model"], messages=CALL["messages"]).input_tokens > 0
    assert [model.id for model in client.models.list()] == ["prompt:support-summary"]

    assert len(sandbox_requests(signing)) == 3  # the call, the stream and the count
    assert UsageRecord.objects.filter(endpoint="anthropic").count() == 2


def test_the_sdk_without_the_signer_is_refused(signing, sdk):
    refused(sdk(token=signing["token"]), "signature_required")

    assert sandbox_requests(signing) == []
    assert not UsageRecord.objects.exists()


@pytest.mark.parametrize(
    ("how", "code"),
    [
        ("wrong secret", "signature_invalid"),
        ("clock behind", "signature_stale"),
        ("clock ahead", "signature_stale"),
    ],
)
def test_a_wrong_signer_is_refused_in_anthropics_shape(signing, wsgi, how, code):
    client = {
        "wrong secret": lambda: signed_sdk(signing, wsgi, secret="tgsig_" + "x" * 43),
        "clock behind": lambda: signed_sdk(signing, wsgi, clock=lambda: time.time() - 3600),
        "clock ahead": lambda: signed_sdk(signing, wsgi, clock=lambda: time.time() + 3600),
    }[how]()

    error = refused(client, code)

    assert error.response.headers["request-id"]
    assert sandbox_requests(signing) == []
    assert not UsageRecord.objects.exists()


def test_after_a_rotation_the_old_secret_is_refused(signing, wsgi, custodian):
    assert signed_sdk(signing, wsgi).models.list().data  # the token and client are in the hot cache

    new = key_services.api_client_rotate_signing_secret(actor=custodian, client=signing["client"], reason="leak")

    refused(signed_sdk(signing, wsgi), "signature_invalid")
    assert signed_sdk(signing, wsgi, secret=new).messages.create(**CALL).content


def test_a_retried_call_is_signed_afresh(signing, wsgi):
    """The first attempt is served by Tollgate but its answer is lost: the SDK retries, and the retry must
    carry a new signature, or it would be refused as a replay."""
    transport = Recording(wsgi, drop_first=True)

    message = signed_sdk(signing, wsgi, transport=transport, max_retries=2).messages.create(**CALL)

    assert PHONE in message.content[0].text
    assert len(transport.sent) == 2
    first, retry = transport.sent
    assert first[NONCE_HEADER] != retry[NONCE_HEADER]
    assert first[SIGNATURE_HEADER] != retry[SIGNATURE_HEADER]
    assert len(sandbox_requests(signing)) == 2  # both attempts were served
    assert UsageRecord.objects.count() == 2


def test_a_retry_sent_with_the_first_signature_is_a_replay(signing, wsgi):
    """The counterpart: what the retry above would meet had it reused the first attempt's signature."""
    transport = Recording(wsgi, drop_first=True, reuse_first=True)

    error = refused(signed_sdk(signing, wsgi, transport=transport, max_retries=2), "signature_replayed")

    assert len(transport.sent) == 2  # a 401 is not retried
    assert error.body["error"]["message"]
    assert len(sandbox_requests(signing)) == 1  # only the first attempt reached the upstream
    assert UsageRecord.objects.count() == 1


def test_clients_that_do_not_require_signatures_are_unaffected(world, wsgi, sdk, custodian):
    assert sdk().messages.create(**CALL).content
    _, token = key_services.api_token_issue(actor=custodian, client=world["client"], label="signer")
    with_signer = anthropic.Anthropic(
        api_key=token,
        base_url="http://testserver/anthropic",
        http_client=httpx2.Client(transport=httpx2.WSGITransport(app=wsgi), auth=TollgateSigner("tgsig_none")),
        max_retries=0,
    )

    assert with_signer.messages.create(**CALL).content  # signed with a secret it has not: not looked at
