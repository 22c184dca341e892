"""The detector registry: the built-ins run in the order that decides ties (e-mail, numbers, IPv6), the
engine gives what a fixed-order scan gives, and a detector registered from outside is used by
`redact_text` and `redact_variables` without a change to the engine, its priority deciding ties."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.redaction.detectors import Detector, detector_register, detector_unregister, detectors, fold
from gateway.redaction.engine import Redaction, custom_patterns, redact_variables
from prompts.specs import RedactionSpec

PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Values of every built-in kind, and some that two detectors both read (an address holding digits, an
# IPv4 address inside an IPv6 one, a number glued to an "@").
VALUES = [
    "jane.doe@example.com",
    "jöhn42@bücher.de",
    "4155552671@example.com",
    "+1 415 555 2671",
    "+44\u00a020\u00a07946\u00a00958",
    "4111 1111 1111 1111",
    "4539.1488.0343.6467",
    "219-09-9999",
    "219099999",
    "gb82 west 1234 5698 7654 32",
    "DE89-3704-0044-0532-0130-00",
    "10.0.0.1",
    "192.168.001.001",
    "2001:db8::1",
    "::ffff:10.0.0.1",
    "fe80::1%eth0",
    "2026-03-05 10:30",
    "１２３４",
]
FILLER = st.text(alphabet="0123456789 -.:@()+/abcxyzAZé\u200b\u00a0\n４", max_size=12)
TEXTS = st.lists(st.one_of(st.sampled_from(VALUES), FILLER), max_size=12).map(" ".join)


def _reference_redact(text: str, extra: list[tuple[str, re.Pattern[str]]]) -> tuple[str, dict[str, str]]:
    """The redaction as it was written before the registry: the version's patterns, then the e-mail,
    number and IPv6 detectors in that fixed order; earliest start first, on a tie the earlier yielded."""
    find = {detector.name: detector.find for detector in detectors()}
    candidates: list[tuple[int, int, str]] = []
    for kind, pattern in extra:
        candidates.extend((*match.span(), kind) for match in pattern.finditer(text))
    folded = fold(text)
    for name in ("email", "numbers", "ipv6"):
        candidates.extend(find[name](folded))
    ordered = sorted(enumerate(candidates), key=lambda item: (item[1][0], item[0]))
    redaction = Redaction()
    out, position = [], 0
    for _, (start, end, kind) in ordered:
        if start < position:
            continue
        out.append(text[position:start])
        out.append(redaction.placeholder(kind, text[start:end]))
        position = end
    out.append(text[position:])
    return "".join(out), redaction.by_placeholder


def test_the_built_ins_run_in_the_order_that_decides_ties() -> None:
    assert [(detector.name, detector.priority) for detector in detectors()] == [
        ("email", 100),
        ("numbers", 200),
        ("ipv6", 300),
    ]


@PROPERTY
@given(text=TEXTS, terms=st.lists(st.sampled_from(["jane", "1111", "example", "10.0"]), max_size=2))
def test_the_engine_gives_what_the_fixed_order_scan_gives(text: str, terms: list[str]) -> None:
    extra = custom_patterns(RedactionSpec(terms=terms, patterns=[r"\d{3}-\d{2}"]))
    redaction = Redaction()
    assert (redaction.redact_text(text, extra), redaction.by_placeholder) == _reference_redact(text, extra)


@PROPERTY
@given(text=TEXTS)
def test_each_detector_yields_only_its_kinds_in_bounds(text: str) -> None:
    folded = fold(text)
    for detector in detectors():
        for start, end, kind in detector.find(folded):
            assert kind in detector.kinds
            assert 0 <= start < end <= len(text)


# A ticket reference: "TICKET-" and six digits, or nine digits on their own (as an SSN may be written).
TICKET = re.compile(r"TICKET-[0-9]{6}|(?<![0-9])[0-9]{9}(?![0-9])")


def _tickets(folded: str) -> Iterator[tuple[int, int, str]]:
    for match in TICKET.finditer(folded):
        yield (*match.span(), "TICKET")


@contextmanager
def _registered(detector: Detector) -> Iterator[Detector]:
    detector_register(detector)
    try:
        yield detector
    finally:
        detector_unregister(detector.name)


def test_a_registered_detector_is_used_by_redact_text_and_redact_variables() -> None:
    before = detectors()
    with _registered(Detector("ticket", ("TICKET",), _tickets, priority=250)):
        redaction = Redaction()
        assert redaction.redact_text("see TICKET-123456 and jane@example.com") == "see <TICKET_1> and <EMAIL_1>"
        assert redaction.rehydrate("<TICKET_1>") == "TICKET-123456"
        schema = [{"name": "ticket"}, {"name": "count"}]
        redacted, redaction = redact_variables(schema, {"ticket": "re TICKET-654321", "count": 123456789}, [])
        # 123456789 passes the SSN rules and is nine digits on their own: a tie at the same start, which
        # the number detector (priority 200) wins.
        assert redacted == {"ticket": "re <TICKET_1>", "count": "<SSN_1>"}
        assert redaction.as_counts() == {"SSN": 1, "TICKET": 1}
    assert detectors() == before
    assert Redaction().redact_text("TICKET-123456") == "TICKET-123456"


@pytest.mark.parametrize(
    ("priority", "kind"),
    [(50, "TICKET"), (150, "TICKET"), (250, "SSN"), (350, "SSN")],
)
def test_the_priority_decides_a_tie_at_the_same_start(priority: int, kind: str) -> None:
    """219099999 is an SSN to the number detector (priority 200) and a ticket to this one."""
    with _registered(Detector("ticket", ("TICKET",), _tickets, priority=priority)):
        assert Redaction().redact_text("ref 219099999.") == f"ref <{kind}_1>."
        # The version's own patterns come before every detector.
        extra = custom_patterns(RedactionSpec(terms=[], patterns=[r"2190\d+"]))
        assert Redaction().redact_text("ref 219099999.", extra) == "ref <CUSTOM_1>."


def test_names_and_priorities_are_unique_and_kinds_are_placeholder_words() -> None:
    with pytest.raises(ValueError, match="clashes"):
        detector_register(Detector("email", ("TICKET",), _tickets, priority=999))
    with pytest.raises(ValueError, match="clashes"):
        detector_register(Detector("ticket", ("TICKET",), _tickets, priority=200))
    with pytest.raises(ValueError, match="upper-case"):
        Detector("ticket", ("ticket",), _tickets, priority=999)
    with pytest.raises(ValueError, match="upper-case"):
        Detector("ticket", (), _tickets, priority=999)
    assert [detector.name for detector in detectors()] == ["email", "numbers", "ipv6"]
