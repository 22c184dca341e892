"""Redaction finds each kind of personal data, leaves look-alikes alone, and rehydrates per request."""

from __future__ import annotations

import re

import pytest

from gateway.redaction.engine import Redaction, StreamRehydrator, custom_patterns, redact_variables
from prompts.specs import RedactionSpec


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
    ("text", "kind", "value"),
    [
        # As reported: these reached the upstream in clear.
        ("card 4539.1488.0343.6467 expired", "CARD", "4539.1488.0343.6467"),
        ("pay to gb82 west 1234 5698 7654 32 please", "IBAN", "gb82 west 1234 5698 7654 32"),
        ("SSN 219099999 on file", "SSN", "219099999"),
        ("SSN 219 09 9999 on file", "SSN", "219 09 9999"),
        ("write to jane@bücher.de today", "EMAIL", "jane@bücher.de"),
    ],
)
def test_reported_formats_are_found(text, kind, value):
    redaction = Redaction()

    redacted = redaction.redact_text(text)

    assert redacted == text.replace(value, f"<{kind}_1>")
    assert redaction.rehydrate(redacted) == text


@pytest.mark.parametrize(
    ("text", "kind", "value"),
    [
        # Separators: Unicode dashes and spaces, several in a row, mixed, zero-width, a newline.
        ("card 4111\u20111111\u20131111\u22121111 ok", "CARD", "4111\u20111111\u20131111\u22121111"),
        ("card 4111\u00a01111\u20091111\u202f1111\u30001111 ok", "CARD", "4111\u00a01111\u20091111\u202f1111"),
        ("card 4111 - 1111 -- 1111 . 1111 ok", "CARD", "4111 - 1111 -- 1111 . 1111"),
        ("card 41\u200b11\u200c1111\u200d1111\u20601111\ufeff ok", "CARD", "41\u200b11\u200c1111\u200d1111\u20601111"),
        ("card 4111 1111\n1111 1111\nthanks", "CARD", "4111 1111\n1111 1111"),
        ("card 4111111111111111", "CARD", "4111111111111111"),
        ("4222222222222 is the 13-digit one", "CARD", "4222222222222"),
        ("and 6011 0000 0000 0000 001 the 19-digit one", "CARD", "6011 0000 0000 0000 001"),
        # Digit scripts: full-width, Arabic-Indic, Devanagari, mixed.
        ("card ４１１１ １１１１ １１１１ １１１１ ok", "CARD", "４１１１ １１１１ １１１１ １１１１"),
        (
            "SSN \u0662\u0661\u0669-\u0660\u0669-\u0669\u0669\u0669\u0669 ok",
            "SSN",
            "\u0662\u0661\u0669-\u0660\u0669-\u0669\u0669\u0669\u0669",
        ),
        ("SSN २१९०९९९९९ ok", "SSN", "२१९०९९९९९"),
        ("call +４４ ２０ ７９４６ 0958 now", "PHONE", "+４４ ２０ ７９４６ 0958"),
        # SSNs with dashes, dots, spaces or nothing; IBANs in any case and grouping.
        ("SSN 219.09.9999.", "SSN", "219.09.9999"),
        ("SSN 219-09 9999", "SSN", "219-09 9999"),
        ("IBAN DE89-3704-0044-0532-0130-00 ok", "IBAN", "DE89-3704-0044-0532-0130-00"),
        ("IBAN De89.3704.0044.0532.0130.00.", "IBAN", "De89.3704.0044.0532.0130.00"),
        ("IBAN fr14 2004 1010 0505 0001 3m02 606 ok", "IBAN", "fr14 2004 1010 0505 0001 3m02 606"),
        ("IBAN: NL91ABNA0417164300", "IBAN", "NL91ABNA0417164300"),
        ("IBAN CH93 00762 0116238 52957 ok", "IBAN", "CH93 00762 0116238 52957"),
        (
            "IBAN ＧＢ８２ ＷＥＳＴ １２３４ ５６９８ ７６５４ ３２ ok",
            "IBAN",
            "ＧＢ８２ ＷＥＳＴ １２３４ ５６９８ ７６５４ ３２",
        ),
        # E-mail: internationalised, punycode, plus-tags, sub-domains, glued to punctuation.
        ("write to <jane@example.com>", "EMAIL", "jane@example.com"),
        ("(jane@example.com), thanks", "EMAIL", "jane@example.com"),
        ("mailto:Jane.Doe+Billing@Mail.Example.CO.UK?subject=hi", "EMAIL", "Jane.Doe+Billing@Mail.Example.CO.UK"),
        ("почта: Пользователь@пример.рф.", "EMAIL", "Пользователь@пример.рф"),
        ("邮箱 用户@例子.中国 谢谢", "EMAIL", "用户@例子.中国"),
        ("write to jane@xn--bcher-kva.xn--p1ai now", "EMAIL", "jane@xn--bcher-kva.xn--p1ai"),
        ("write to jane＠example.com now", "EMAIL", "jane＠example.com"),
        ("write to ja\u200bne@exam\u200bple.com now", "EMAIL", "ja\u200bne@exam\u200bple.com"),
        ("नमस्ते@उदाहरण.भारत", "EMAIL", "नमस्ते@उदाहरण.भारत"),
        # At the very start or end of the text; IP addresses side by side with a dash.
        ("219-09-9999", "SSN", "219-09-9999"),
        ("ip 10.0.0.1-10.0.0.9", "IP", "10.0.0.1"),
        ("ip 192.168.001.001 now", "IP", "192.168.001.001"),
        ("call +44 (0)20 7946 0958 or 0044 20 7946 0958", "PHONE", "+44 (0)20 7946 0958"),
        ("card 4111·1111·1111·1111 ok", "CARD", "4111·1111·1111·1111"),
        ("from ::ffff:192.0.2.1 now", "IP", "::ffff:192.0.2.1"),
    ],
)
def test_numbers_and_addresses_are_found_whatever_their_writing(text, kind, value):
    redaction = Redaction()

    redacted = redaction.redact_text(text)

    assert value not in redacted
    assert redacted.startswith(text[: text.index(value)] + f"<{kind}_1>")
    assert redaction.rehydrate(redacted) == text


def test_two_numbers_side_by_side_are_told_apart():
    redaction = Redaction()

    redacted = redaction.redact_text("on 2026-05-02 4111 1111 1111 1111 +1 415 555 2671 219 09 9999 thanks")

    assert redacted == "on 2026-05-02 <CARD_1> <PHONE_1> <SSN_1> thanks"


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
        "price 1,234.56 or 12 345,67 EUR on 30.11.2026 at 10:30:45",
        "version 1.2.3, build 20261130, Python 3.11.7 and 2026-11-30T10:30:00Z",
        "is 2026 at 10 am by 12 be 300",  # country codes of IBANs before numbers
        "ticket ABC-12345-678 and x219099999 and 219099999th",  # glued to letters
        "contact @jane or jane@ or jane@localhost",
        "SSN 666-12-3456, 900-12-3456, 219-00-9999 and 219-09-0000 are no SSNs",
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

    redacted, redaction = redact_variables(schema, values, custom_patterns(RedactionSpec(terms=["project falcon"])))

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
