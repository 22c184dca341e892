"""Personal data written the ways support tickets hold it — inside Chinese or Japanese text, with slashes,
as ten-digit Indian mobiles, as a float, repeated from a sensitive variable, inside a batch id — sent through
the API never reaches the upstream."""

from __future__ import annotations

import json

import pytest

from prompts import services
from tests.factories import version_content
from tests.gateway.upstream import sandbox_requests

# (ticket text, the digits/characters that must not reach the upstream)
LEAKS = {
    # Japanese/Chinese text has no spaces: the number is "glued" to CJK letters and skipped: they fold like punctuation.
    "card_in_japanese_text": ("カード番号4111111111111111です", "4111111111111111"),
    "card_in_chinese_text": ("我的卡号是4111111111111111谢谢", "4111111111111111"),
    "jp_mobile_in_japanese_text": ("電話090-1234-5678までお願いします", "09012345678"),
    "us_phone_in_chinese_text": ("请拨打+1 415 555 2671联系我", "4155552671"),
    "iban_in_japanese_text": ("振込先口座DE89370400440532013000です", "89370400440532013000"),
    "iban_followed_by_japanese": ("IBAN DE89 3704 0044 0532 0130 00です", "89370400440532013000"),
    "ssn_in_japanese_text": ("社会保障番号219-09-9999です", "219099999"),
    # IN is in TOLLGATE_PHONE_REGIONS; Indian mobiles are written as ten digits, without a trunk 0.
    "indian_mobile_ten_digits": ("please call me on 98765 43210 after 6pm", "9876543210"),
    "indian_mobile_ten_digits_plain": ("mobile: 9876543210", "9876543210"),
    # German (DE is in TOLLGATE_PHONE_REGIONS) writes area code / number with a slash.
    "german_phone_with_slash": ("Rückruf bitte unter Tel. 030/12345678", "03012345678"),
    "german_phone_spaced_slash": ("Tel.: 089 / 12 34 56 78", "0891234567"),
    "international_phone_with_slash": ("Tel +49 30/12345678", "493012345678"),
    # A slash between card groups too.
    "card_with_slashes": ("card 4111/1111/1111/1111", "4111111111111111"),
}


def _digits(text: str) -> str:
    return "".join(str(int(char)) for char in text if char.isdigit())


def _run(world, ticket: str) -> str:
    world["sandbox"].call(lambda state: state.reset())
    body = {"variables": {"ticket": ticket, "customer_email": "x@example.org"}}
    response = world["http"].post(
        "/api/v1/prompts/support-summary/run", json.dumps(body), content_type="application/json"
    )
    assert response.status_code == 200, response.content
    return json.dumps(sandbox_requests(world), ensure_ascii=False)


@pytest.mark.django_db
@pytest.mark.parametrize("case", sorted(LEAKS))
def test_personal_data_format_does_not_reach_the_sandbox(world, case):
    ticket, value = LEAKS[case]
    sent = _run(world, ticket)
    if value.isdigit():
        assert value not in _digits(sent), f"{case}: {value} reached the upstream"
    else:
        assert value not in sent, f"{case}: {value} reached the upstream"


@pytest.mark.django_db
@pytest.mark.parametrize("amount", [4111111111111111.0, 219099999.0, 4155552671.0])
def test_number_variable_written_as_a_float_is_redacted(world, author, approver, amount):
    """docs/redaction.md: numbers in integer variables are found. A "number" variable accepts a float; JSON
    `4111111111111111.0` is a card number all the same."""
    content = version_content(
        user_template="Summarise this ticket:\n{{ ticket }}\nCustomer: {{ customer_email }}\nRef: {{ ref }}",
        variables=[
            {"name": "ticket", "type": "string", "required": True, "max_length": 5000},
            {"name": "customer_email", "type": "string", "required": True, "max_length": 200, "sensitive": True},
            {"name": "ref", "type": "number", "required": True},
        ],
    )
    version = services.prompt_version_create(
        actor=author, prompt=world["prompt"], content=content, change_summary="number ref"
    )
    services.prompt_version_submit(actor=author, version=version)
    services.prompt_version_approve(actor=approver, version=version, note="ok")
    for environment in ("staging", "production"):
        services.prompt_version_release(actor=approver, version=version, environment=environment, reason="x")
    world["sandbox"].call(lambda state: state.reset())
    raw = f'{{"variables": {{"ticket": "hello", "customer_email": "x@example.org", "ref": {amount!r}}}}}'
    response = world["http"].post("/api/v1/prompts/support-summary/run", raw, content_type="application/json")
    assert response.status_code == 200, response.content
    sent = json.dumps(sandbox_requests(world), ensure_ascii=False)
    assert str(int(amount)) not in _digits(sent)


@pytest.mark.django_db
@pytest.mark.parametrize("custom_id", ["caller_14155552671", "card_4111111111111111", "ssn_219099999"])
def test_a_batch_custom_id_carrying_personal_data_is_refused(world, django_capture_on_commit_callbacks, custom_id):
    """prompts/runtime/batches.py refuses a custom_id that "looks like personal data", because ids are sent
    upstream and stored as they are; "_" (the one separator the id syntax allows besides "-") hides it."""
    world["sandbox"].call(lambda state: state.reset())
    item = {"custom_id": custom_id, "variables": {"ticket": "hello", "customer_email": "x@example.org"}}
    with django_capture_on_commit_callbacks(execute=True):
        response = world["http"].post("/api/v1/prompts/support-summary/batches", {"items": [item]}, format="json")
    sent = json.dumps(sandbox_requests(world))
    digits = custom_id.split("_")[1]
    assert digits not in sent, f"{custom_id} reached the upstream"
    assert response.status_code == 400, f"{custom_id} accepted ({response.status_code})"


@pytest.mark.django_db
def test_a_sensitive_value_repeated_in_another_variable_does_not_reach_the_sandbox(world, author, approver):
    """A sensitive variable is replaced whole, but the same value written again in the free text of the same
    request (a customer signs their ticket with their name, as in the demo's `customer_name` + `issue`) goes
    upstream in clear: the request already told Tollgate this value is sensitive."""
    content = version_content(
        user_template="Reply to {{ customer_name }} about:\n{{ ticket }}\nCustomer: {{ customer_email }}",
        variables=[
            {"name": "ticket", "type": "string", "required": True, "max_length": 5000},
            {"name": "customer_email", "type": "string", "required": True, "max_length": 200, "sensitive": True},
            {"name": "customer_name", "type": "string", "required": True, "max_length": 200, "sensitive": True},
        ],
    )
    version = services.prompt_version_create(
        actor=author, prompt=world["prompt"], content=content, change_summary="customer name"
    )
    services.prompt_version_submit(actor=author, version=version)
    services.prompt_version_approve(actor=approver, version=version, note="ok")
    for environment in ("staging", "production"):
        services.prompt_version_release(actor=approver, version=version, environment=environment, reason="x")
    world["sandbox"].call(lambda state: state.reset())
    body = {
        "variables": {
            "ticket": "My order never arrived. Regards, Marguerite Okonkwo-Lindqvist",
            "customer_email": "x@example.org",
            "customer_name": "Marguerite Okonkwo-Lindqvist",
        }
    }
    response = world["http"].post(
        "/api/v1/prompts/support-summary/run", json.dumps(body), content_type="application/json"
    )
    assert response.status_code == 200, response.content
    sent = json.dumps(sandbox_requests(world), ensure_ascii=False)
    assert "Okonkwo-Lindqvist" not in sent
