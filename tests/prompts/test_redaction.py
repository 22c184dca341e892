"""Redaction finds each kind of personal data, leaves look-alikes alone, and rehydrates per request."""

from __future__ import annotations

import re

import pytest

from prompts.runtime.redact import Redaction, StreamRehydrator, custom_patterns, redact_variables


@pytest.mark.parametrize(
    ("text", "kind", "value"),
    [
        ("write to jane.doe+billing@example.co.uk today", "EMAIL", "jane.doe+billing@example.co.uk"),
        ("call +44 20 7946 0958 after five", "PHONE", "+44 20 7946 0958"),
        ("call (415) 555-2671.", "PHONE", "(415) 555-2671"),
        ("call 415.555.2671 today", "PHONE", "415.555.2671"),
        ("in Paris: +33.1.42.68.53.00.", "PHONE", "+33.1.42.68.53.00"),
        ("card 4111 1111 1111 1111 expired", "CARD", "4111 1111 1111 1111"),
        ("pay to GB82 WEST 1234 5698 7654 32 please", "IBAN", "GB82 WEST 1234 5698 7654 32"),
        ("SSN 123-45-6789 on file", "SSN", "123-45-6789"),
        ("from 192.168.10.1.", "IP", "192.168.10.1"),
        ("from 2001:db8::8a2e:370:7334 now", "IP", "2001:db8::8a2e:370:7334"),
    ],
)
def test_each_kind_is_found_and_replaced(text, kind, value):
    redaction = Redaction()

    redacted = redaction.redact_text(text)

    assert value not in redacted
    assert f"<{kind}_1>" in redacted
    assert redaction.rehydrate(redacted) == text


@pytest.mark.parametrize(
    "text",
    [
        "order 12345678 of 2026-03-05",  # an order number and a date
        "card 4111 1111 1111 1112",  # fails Luhn
        "version 1.2.3.4000 and pi 3.14159",
        "build 2026.11.27.1830 from 10.0.0.1.5",  # a dotted build number is no valid phone number
        "IBAN GB00 WEST 1234 5698 7654 32",  # bad checksum
        "ticket #ABC123456789 and 000-12-3456",
        "room 101, call ext. 4456",
    ],
)
def test_look_alikes_are_left_alone(text):
    assert Redaction().redact_text(text) == text


def test_one_value_gets_one_placeholder_per_request():
    redaction = Redaction()

    redacted = redaction.redact_text("a@x.io, b@y.io and again a@x.io")

    assert redacted == "<EMAIL_1>, <EMAIL_2> and again <EMAIL_1>"
    assert redaction.as_counts() == {"EMAIL": 3}


def test_sensitive_variables_are_replaced_whole_and_custom_terms_too():
    schema = [{"name": "customer_name", "sensitive": True}, {"name": "notes"}]
    values = {"customer_name": "Ada Lovelace", "notes": "Project Falcon ships to ada@example.com"}

    redacted, redaction = redact_variables(schema, values, custom_patterns({"terms": ["project falcon"]}))

    assert redacted == {"customer_name": "<CUSTOMER_NAME_1>", "notes": "<TERM_1> ships to <EMAIL_1>"}
    assert redaction.rehydrate("Dear <CUSTOMER_NAME_1>") == "Dear Ada Lovelace"


def test_placeholders_this_request_did_not_make_stay_as_typed():
    redaction = Redaction()
    redaction.redact_text("mail me at x@y.io")

    assert redaction.rehydrate("<EMAIL_1> <EMAIL_2> <PHONE_1>") == "x@y.io <EMAIL_2> <PHONE_1>"


def test_a_placeholder_split_across_chunks_is_held_back_until_whole():
    redaction = Redaction()
    redacted = redaction.redact_text("Reply to jane@example.com soon. 3 < 4 holds.")
    rehydrator = StreamRehydrator(redaction)

    pieces = [rehydrator.feed(redacted[i : i + 3]) for i in range(0, len(redacted), 3)]
    pieces.append(rehydrator.flush())

    assert "".join(pieces) == "Reply to jane@example.com soon. 3 < 4 holds."
    assert not any(re.search(r"<[A-Z_]*$", piece) and "<E" in piece for piece in pieces)
