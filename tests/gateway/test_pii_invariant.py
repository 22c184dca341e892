"""Personal data never leaves and is never kept in clear: generated values — e-mail addresses (ASCII and
internationalised), phone numbers, card numbers, IBANs and SSNs in many formats, separators, cases and digit
scripts — put in a free-text variable, a sensitive variable and the request metadata of runs, streams and jobs,
must not appear in what the sandbox received, in any database table, in any log line (every logger at DEBUG)
or in an evidence package; the caller still gets them back in the answer."""

from __future__ import annotations

import io
import json
import logging
import zipfile
from datetime import timedelta

import phonenumbers
import pytest
from django.apps import apps
from django.db import transaction
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from audit.evidence import Period, evidence_export
from tests.gateway.upstream import sandbox_requests

SEPARATORS = [" ", "-", ".", "", "\u00a0", "\u2010", "\u2009", " - "]
FULLWIDTH = str.maketrans("0123456789", "０１２３４５６７８９")


def _luhn_complete(digits: str) -> str:
    total = 0
    for index, char in enumerate(reversed(digits + "0")):
        value = int(char) * (2 if index % 2 else 1)
        total += value - 9 if value > 9 else value
    return digits + str((10 - total % 10) % 10)


def _grouped(digits: str, sizes: list[int], separator: str) -> str:
    parts, start = [], 0
    for size in sizes:
        if start < len(digits):
            parts.append(digits[start : start + size])
            start += size
    if start < len(digits):
        parts.append(digits[start:])
    return separator.join(parts)


def _card(prefix: str, body: str, separator: str, fullwidth: bool) -> tuple[str, str]:
    number = _luhn_complete(prefix + body)
    text = _grouped(number, [4, 4, 4, 4], separator)
    return (text.translate(FULLWIDTH) if fullwidth else text), number


def _ssn(area: int, group: int, serial: int, separator: str) -> tuple[str, str]:
    return f"{area:03d}{separator}{group:02d}{separator}{serial:04d}", f"{area:03d}{group:02d}{serial:04d}"


def _mod97(text: str) -> int:
    return int("".join(str(int(char, 36)) for char in text)) % 97


def _iban(bban: str, separator: str, lower: bool) -> tuple[str, str]:
    value = f"DE{98 - _mod97(bban + 'DE00'):02d}{bban}"
    text = _grouped(value, [4] * 8, separator)
    return (text.lower() if lower else text), value


cards = st.builds(
    _card,
    st.sampled_from(["4539", "5425", "3714", "6011"]),
    st.text("0123456789", min_size=11, max_size=11),
    st.sampled_from(SEPARATORS),
    st.booleans(),
)
ssns = st.builds(
    _ssn,
    st.integers(1, 665) | st.integers(667, 899),
    st.integers(1, 99),
    st.integers(1, 9999),
    st.sampled_from(SEPARATORS),
)
ibans = st.builds(
    _iban, st.text("0123456789", min_size=18, max_size=18), st.sampled_from([" ", "", "-"]), st.booleans()
)
emails = st.builds(
    lambda local, domain: (f"{local}@{domain}", f"{local}@{domain}"),
    st.sampled_from(["jane.doe", "j.o'neil", "zoë", "用户", "müller+tag", "a_b"]),
    st.sampled_from(["example.com", "mail.example.org", "münchen.de", "例え.テスト", "xn--mnchen-3ya.de"]),
)


def _phone(region, style):
    number = phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE)
    formats = [phonenumbers.PhoneNumberFormat.INTERNATIONAL, phonenumbers.PhoneNumberFormat.E164,
               phonenumbers.PhoneNumberFormat.NATIONAL]  # fmt: skip
    text = phonenumbers.format_number(number, formats[style])
    if style == 2 and region != "US" and not text.startswith("0"):
        text = phonenumbers.format_number(number, formats[0])  # only written with a trunk 0 at home is it found
    return text, "".join(char for char in text if char.isdigit())[-7:]


phones = st.builds(_phone, st.sampled_from(["US", "GB", "DE", "FR", "JP", "IN", "BR", "AU"]), st.integers(0, 2))
pii = st.one_of(cards, ssns, ibans, emails, phones)


def _digits(text: str) -> str:
    return "".join(str(int(char)) for char in text if char.isdigit())


def _leaks(haystack: str, value: str, core: str) -> bool:
    """Whether `value` shows in `haystack`, also with its separators stripped (the digits of a number)."""
    if value in haystack or value.lower() in haystack.lower():
        return True
    if core.isdigit() and len(core) >= 7:
        return core in _digits(haystack)
    return False


def _database_text():
    rows = []
    for model in apps.get_models():
        if model._meta.app_label in ("prompts", "usage", "keys", "audit") and not model._meta.proxy:
            rows.extend(model.objects.values())
    return json.dumps(rows, default=str, ensure_ascii=False)


def _evidence_text():
    today = timezone.now().date()
    text = []
    for kind in ("usage_ledger", "audit_log"):
        buffer = io.BytesIO()
        period = Period(today - timedelta(days=1), today + timedelta(days=1))
        evidence_export(type_name=kind, period=period, out=buffer, actor_repr="test")
        with zipfile.ZipFile(buffer) as archive:
            text.extend(archive.read(name).decode() for name in archive.namelist())
    return "\n".join(text)


@pytest.mark.django_db
def test_generated_personal_data_never_leaves_nor_stays_in_clear(world, django_capture_on_commit_callbacks):
    handler = next(h for h in logging.getLogger().handlers if getattr(h, "filters", None))
    captured = io.StringIO()
    names = ("", "anthropic", "httpx", "httpx2", "httpcore", "django.db", "prompts", "usage", "keys", "audit")
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    generated: list[tuple[str, str]] = []
    old_stream = handler.setStream(captured)
    for logger in loggers:
        logger.setLevel(logging.DEBUG)

    @hypothesis_settings(
        max_examples=40,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        derandomize=True,
    )
    @given(
        in_text=pii,
        sensitive=pii,
        end_user=pii,
        endpoint=st.sampled_from(["run", "stream", "job"]),
        before=st.sampled_from(["", "Call me: ", "card (", "ref=", "\n"]),
        after=st.sampled_from(["", ".", ") thanks", ", ok", "\n"]),
    )
    def check(in_text, sensitive, end_user, endpoint, before, after):
        generated.extend((in_text, sensitive, end_user))
        world["sandbox"].call(lambda state: state.reset())
        ticket = f"My printer broke. {before}{in_text[0]}{after} Please help."
        body = {
            "variables": {"ticket": ticket, "customer_email": sensitive[0]},
            "metadata": {"end_user": end_user[0], "feature": f"support {in_text[0]}"},
        }
        path = "jobs" if endpoint == "job" else "run"
        if endpoint == "stream":
            body["stream"] = True
        with transaction.atomic():  # each example leaves nothing behind for the next to find
            try:
                _example(body, path, endpoint, in_text, sensitive, end_user)
            finally:
                transaction.set_rollback(True)

    def _example(body, path, endpoint, in_text, sensitive, end_user):
        with django_capture_on_commit_callbacks(execute=True):
            response = world["http"].post(
                f"/api/v1/prompts/support-summary/{path}", json.dumps(body), content_type="application/json"
            )
        assert response.status_code in (200, 202), response.content
        if endpoint == "stream":
            answer = b"".join(response.streaming_content).decode()
            assert json.dumps(in_text[0], ensure_ascii=False)[1:-1] in answer  # rehydrated for the caller
        elif endpoint == "run":
            assert in_text[0] in response.json()["output"]

        sent = json.dumps(sandbox_requests(world), ensure_ascii=False)
        stored = _database_text()
        evidence = _evidence_text()
        for value, core in (in_text, sensitive, end_user):
            assert not _leaks(sent, value, core), f"{value!r} reached the upstream"
            assert not _leaks(stored, value, core), f"{value!r} is stored in clear"
            assert not _leaks(evidence, value, core), f"{value!r} is in an evidence package"

    try:
        check()
        logged = captured.getvalue()
    finally:
        handler.setStream(old_stream)
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
    assert logged  # DEBUG lines were written: the check below can fail
    for value, core in generated:
        assert not _leaks(logged, value, core), f"{value!r} is in the logs"
