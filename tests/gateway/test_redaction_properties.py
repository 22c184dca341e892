"""Personal data written any way a person (or an adversary) may write it — any separators, case and
digit script, glued to punctuation, at either end of the text — is replaced whole, counted as its
kind and rehydrated exactly; ordinary prose with dates, prices, times and versions is left alone."""

from __future__ import annotations

import ipaddress
import re

import phonenumbers
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stdnum import iban, luhn

from gateway.redaction.detectors import fold
from gateway.redaction.engine import Redaction

PROPERTY = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# The zero of each digit script: ASCII, full-width, Arabic-Indic, Extended Arabic-Indic, Devanagari,
# Bengali, Thai, mathematical bold.
DIGIT_ZEROS = [0x30, 0xFF10, 0x660, 0x6F0, 0x966, 0x9E6, 0xE50, 0x1D7CE]
SEPARATORS = [
    *" -.\n\t",
    *"\u2010\u2011\u2012\u2013\u2014\u2015\u2212",  # dashes and the minus sign
    *"\u00a0\u2009\u202f\u3000",  # no-break, thin, narrow no-break and ideographic spaces
    *"\u200b\u200c\u200d\u2060\ufeff",  # zero-width characters
    *"\uff0e\uff0d\u00b7\r",  # full-width full stop and hyphen-minus, middle dot, carriage return
]
WORDS = ["the", "card", "is", "de", "at", "naïve", "café", "Straße", "日本語", "Привет", "नमस्ते", "ok", "IBAN"]
BEFORE = [" ", " (", " <", ": ", "\n", ", ", "\t", ' "', " «", " [", " mailto:"]
AFTER = [" ", ")", ">", ".", ",", "!", "?", ";", '"', "»", "\n", "]"]

gaps = st.lists(st.sampled_from(SEPARATORS), min_size=1, max_size=4).map("".join)
prose = st.lists(st.sampled_from(WORDS), max_size=4).map(" ".join)


def in_script(draw: st.DrawFn, digits: str) -> str:
    """The digits, each in a script drawn for it (all one script or mixed)."""
    if draw(st.booleans()):
        zeros = [draw(st.sampled_from(DIGIT_ZEROS))] * len(digits)
    else:
        zeros = draw(st.lists(st.sampled_from(DIGIT_ZEROS), min_size=len(digits), max_size=len(digits)))
    return "".join(
        chr(zero + int(digit)) if digit.isdigit() else digit for zero, digit in zip(zeros, digits, strict=True)
    )


def grouped(draw: st.DrawFn, chars: str, *, cuts: list[int] | None = None) -> str:
    """The characters with generated separators at `cuts` (drawn when not given)."""
    if cuts is None:
        cuts = sorted(draw(st.sets(st.integers(1, len(chars) - 1), max_size=len(chars) - 1)))
    out, last = [], 0
    for cut in cuts:
        out += [chars[last:cut], draw(gaps)]
        last = cut
    return "".join(out) + chars[last:]


def with_check_digit(body: str) -> str:
    return body + luhn.calc_check_digit(body)


@st.composite
def cards(draw: st.DrawFn) -> tuple[str, str]:
    prefix = draw(st.sampled_from(["4", "51", "55", "2221", "34", "37", "6011", "35", "62"]))
    length = draw(st.integers(13, 19))
    body = prefix + "".join(
        draw(
            st.lists(
                st.sampled_from("0123456789"), min_size=length - 1 - len(prefix), max_size=length - 1 - len(prefix)
            )
        )
    )
    return "CARD", grouped(draw, in_script(draw, with_check_digit(body)))


@st.composite
def ssns(draw: st.DrawFn) -> tuple[str, str]:
    area = draw(st.integers(1, 899).filter(lambda area: area != 666))
    digits = f"{area:03d}{draw(st.integers(1, 99)):02d}{draw(st.integers(1, 9999)):04d}"
    # No more than three groups: four dotted groups may be an IPv4 address, which wins.
    cuts = draw(st.sampled_from([[3, 5], [], [3], [5]]) | st.lists(st.integers(1, 8), max_size=2).map(sorted))
    return "SSN", grouped(draw, in_script(draw, digits), cuts=sorted(set(cuts)))


IBAN_BBANS = {
    "GB": lambda draw: "WEST" + draw(st.from_regex(r"[0-9]{14}", fullmatch=True)),
    "DE": lambda draw: draw(st.from_regex(r"[0-9]{18}", fullmatch=True)),
    "NL": lambda draw: (
        draw(st.sampled_from(["ABNA", "INGB", "RABO"])) + draw(st.from_regex(r"[0-9]{10}", fullmatch=True))
    ),
    "AT": lambda draw: draw(st.from_regex(r"[0-9]{16}", fullmatch=True)),
    "CH": lambda draw: draw(st.from_regex(r"[0-9]{5}[0-9A-Z]{12}", fullmatch=True)),
}


@st.composite
def ibans(draw: st.DrawFn) -> tuple[str, str]:
    country = draw(st.sampled_from(sorted(IBAN_BBANS)))
    bban = IBAN_BBANS[country](draw)
    number = country + iban.calc_check_digits(country + "00" + bban) + bban
    assert iban.is_valid(number)
    cased = "".join(draw(st.sampled_from([char.upper(), char.lower()])) for char in number)
    full_width = draw(st.booleans())  # letters and digits; else digits in any script
    cased = "".join(chr(ord(char) + 0xFEE0) for char in cased) if full_width else in_script(draw, cased)
    return "IBAN", grouped(draw, cased)


def example_numbers() -> list[phonenumbers.PhoneNumber]:
    numbers = []
    for region in ["US", "GB", "FR", "DE", "JP", "IN", "BR", "AU", "CH", "ES", "MX", "ZA"]:
        for kind in (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE):
            number = phonenumbers.example_number_for_type(region, kind)
            if number is not None:
                numbers.append(number)
    return numbers


E164 = sorted({phonenumbers.format_number(n, phonenumbers.PhoneNumberFormat.E164) for n in example_numbers()})


@st.composite
def phones(draw: st.DrawFn) -> tuple[str, str]:
    if draw(st.booleans()):
        number = draw(st.sampled_from(E164))
        prefix = draw(st.sampled_from(["+", "+ ", "+\u200b", "(+", "00", "\uff0b"]))
        return "PHONE", prefix + grouped(draw, in_script(draw, number[1:]))
    # A US number as written at home: at most three groups, maybe the area code in brackets.
    digits = draw(st.sampled_from(["2015550123", "4155552671", "2125550199"]))
    if draw(st.booleans()):
        return (
            "PHONE",
            f"({in_script(draw, digits[:3])}){draw(gaps)}{grouped(draw, in_script(draw, digits[3:]), cuts=[3])}",
        )
    cuts = draw(st.sampled_from([[3, 6], [], [3], [6]]))
    return "PHONE", grouped(draw, in_script(draw, digits), cuts=cuts)


@st.composite
def ip_addresses(draw: st.DrawFn) -> tuple[str, str]:
    if draw(st.booleans()):
        octets = [str(draw(st.integers(0, 255))) for _ in range(4)]
        dots = [draw(st.sampled_from([".", "\uff0e"])) for _ in range(3)]
        return "IP", in_script(draw, "".join(octet + dot for octet, dot in zip(octets, [*dots, ""], strict=True)))
    address = ipaddress.IPv6Address(draw(st.integers(1, 2**128 - 1)))
    text = address.compressed if draw(st.booleans()) else address.exploded
    return "IP", "".join(draw(st.sampled_from([char.upper(), char.lower()])) for char in text)


LOCAL_WORDS = ["jane", "j", "doe", "Ünïcødé", "用户", "пользователь", "नमस्ते", "δοκιμή", "x9", "o'brien", "ÆØÅ"]
LABELS = ["example", "bücher", "пример", "例子", "उदाहरण", "mail", "xn--bcher-kva", "sub-domain", "a1"]
TOP_LEVEL = ["com", "de", "io", "museum", "рф", "中国", "भारत", "ελ", "xn--p1ai"]


@st.composite
def emails(draw: st.DrawFn) -> tuple[str, str]:
    words = draw(st.lists(st.sampled_from(LOCAL_WORDS), min_size=1, max_size=3))
    joints = [draw(st.sampled_from(["", ".", "_", "-", "+", "\u200b"])) for _ in words[1:]]
    local = words[0] + "".join(joint + word for joint, word in zip(joints, words[1:], strict=True))
    labels = draw(st.lists(st.sampled_from(LABELS), min_size=1, max_size=3))
    domain = ".".join([*labels, draw(st.sampled_from(TOP_LEVEL))])
    at = draw(st.sampled_from(["@", "\uff20"]))
    address = in_script(draw, f"{local}{at}{domain}")
    return "EMAIL", "".join(
        draw(st.sampled_from([char.upper(), char.lower()])) if len(char.upper()) == 1 else char for char in address
    )


personal_data = st.one_of(cards(), ssns(), ibans(), phones(), ip_addresses(), emails())


@st.composite
def texts_with(draw: st.DrawFn, values: st.SearchStrategy[tuple[str, str]]) -> tuple[str, str, str]:
    kind, value = draw(values)
    head, tail = draw(prose), draw(prose)
    before = draw(st.sampled_from(BEFORE)) if head or draw(st.booleans()) else ""
    after = draw(st.sampled_from(AFTER)) if tail or draw(st.booleans()) else ""
    if kind == "IP":
        before = before.replace("mailto:", "")  # an IPv6 address glued to a ":" is not one
    return kind, value, f"{head}{before}{value}{after}{' ' if tail else ''}{tail}"


@PROPERTY
@given(texts_with(personal_data))
def test_personal_data_is_replaced_whole_whatever_its_writing(case):
    kind, value, text = case
    redaction = Redaction()

    redacted = redaction.redact_text(text)

    assert redaction.rehydrate(redacted) == text
    assert redaction.as_counts() == {kind: 1}, redacted
    ((placeholder, original),) = redaction.by_placeholder.items()
    assert value in original
    # Nothing of it is left: the surrounding words hold no digit and no "@".
    assert not re.search(r"[0-9@]", fold(redacted.replace(placeholder, ""))), redacted


look_alikes = st.one_of(
    st.builds("{}-{:02d}-{:02d}".format, st.integers(1990, 2030), st.integers(1, 12), st.integers(1, 28)),
    st.builds("{:02d}.{:02d}.{}".format, st.integers(1, 28), st.integers(1, 12), st.integers(1990, 2030)),
    st.builds("{:02d}/{:02d}/{}".format, st.integers(1, 12), st.integers(1, 28), st.integers(1990, 2030)),
    st.builds(
        "{}-{:02d}-{:02d} {:02d}:{:02d}".format,
        st.integers(1990, 2030),
        st.integers(1, 12),
        st.integers(1, 28),
        st.integers(0, 23),
        st.integers(0, 59),
    ),
    st.builds("{:,}.{:02d}".format, st.integers(0, 10**6), st.integers(0, 99)),
    st.builds("{}.{}.{}".format, st.integers(0, 20), st.integers(0, 40), st.integers(0, 200)),
    st.integers(0, 99_999).map(str),
    st.builds("{}%".format, st.integers(0, 100)),
)


@PROPERTY
@given(st.lists(st.tuples(st.sampled_from(WORDS), look_alikes), min_size=1, max_size=8))
def test_prose_with_dates_prices_times_and_versions_is_left_alone(parts):
    text = " ".join(f"{word} {number}" for word, number in parts)

    assert Redaction().redact_text(text) == text


@PROPERTY
@given(st.lists(texts_with(personal_data), min_size=2, max_size=4))
def test_several_values_in_one_text_are_each_replaced(cases):
    text = " and ".join(text for _, _, text in cases)
    redaction = Redaction()

    redacted = redaction.redact_text(text)

    assert redaction.rehydrate(redacted) == text
    assert sorted(redaction.counts.elements()) == sorted(kind for kind, _, _ in cases), redacted
    for _, value, _ in cases:
        assert any(value in original for original in redaction.by_placeholder.values())
