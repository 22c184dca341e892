"""What redaction looks for: the folded copy of a text, the detectors and their registry.

Text is scanned for personal data on a folded copy of it, one character for one character: every
Unicode decimal digit becomes its ASCII digit, dashes "-", spaces " ", invisible format characters
(zero-width spaces and joiners, soft hyphens) one marker, full-width forms their ASCII twin, and any
other letter or mark one "letter" marker. Spans found on the copy are spans of the text, so values are
replaced (and rehydrated) exactly as written while the patterns stay ASCII and fast. Numbers are found
whatever their separators (spaces, dots, dashes, brackets, newlines, several in a row), then classified
by their digits: IPv4 addresses, SSNs (any 9 digits passing the SSN rules: area not 000, 666 or 9xx,
group not 00, serial not 0000), cards (13 to 19 digits passing Luhn), phone numbers (valid for
`phonenumbers`). IBANs are found in any case and grouping and checked with `python-stdnum`; e-mail
addresses may be internationalised. Only candidates are validated, which keeps 15 KB of text within a
couple of milliseconds.

Each detector is registered (`detector_register`) with a priority; the engine (`gateway.redaction.engine`)
runs them in the registry's order and never names one. The built-ins register at the end of this module.
"""

from __future__ import annotations

import codecs
import ipaddress
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache

import phonenumbers
from django.conf import settings
from stdnum import iban, luhn, numdb

# What the folded copy holds in place of characters the patterns need not tell apart. ASCII control
# characters, so the copy is pure ASCII; one of them in the text itself is read the same way.
LETTER = "\x01"  # a letter, mark or non-decimal number of any script but ASCII
UNSPACED = "\x04"  # a letter of a script written without spaces: part of an address, not of a number's word
SYMBOL = "\x02"  # other punctuation and symbols outside ASCII
INVISIBLE = "\x03"  # zero-width and other format characters
MINUS_SIGNS = {0x2212, 0x2796, 0x02D7, 0xFE63, 0x2043}
AT_SIGNS = {0xFE6B}  # the full-width "@" (U+FF20) folds with the rest of its block
# Middle dots and bullets written between groups of digits: "4111·1111·1111·1111".
DOTS = {0x00B7, 0x2022, 0x2024, 0x2027, 0x2219, 0x22C5, 0x30FB, 0xFE52, 0xFF65}
# What draws nothing: variation selectors, the combining grapheme joiner, Mongolian free variation
# selectors, Hangul fillers; the blank Braille pattern draws a space.
INVISIBLE_MARKS = {0x034F, *range(0xFE00, 0xFE10), *range(0x180B, 0x1810), 0x115F, 0x1160, 0x3164, 0xFFA0}
BLANKS = {0x2800}
# Scripts written without spaces between words (Chinese, Japanese, Korean, Thai, Lao, Khmer, Myanmar,
# Tibetan): a number touching their letters still stands alone, so they fold like punctuation.
UNSPACED_SCRIPTS = (
    (0x0E00, 0x0EFF), (0x0F00, 0x0FFF), (0x1000, 0x109F), (0x1100, 0x11FF), (0x1780, 0x17FF),
    (0x3040, 0x30FF), (0x3130, 0x318F), (0x31F0, 0x31FF), (0x3400, 0x4DBF), (0x4E00, 0x9FFF),
    (0xAC00, 0xD7AF), (0xF900, 0xFAFF), (0xFF66, 0xFF9F), (0x20000, 0x2FFFF),
)  # fmt: skip

SEPARATORS = " \t\n\r\f\v.()/\x03-"
# One pass finds every run of digits and separators: a single repeated character class is the
# fastest scan the regex engine has. A run is cut where more than eight visible separators follow
# each other (invisible characters do not count: they cost an adversary nothing), then split into
# tokens at separators holding a space or an invisible character, and classified.
NUMBER_RUN = re.compile(r"[0-9][0-9 \t\n\r\f\v.()/\x03-]*")
LONG_GAP = re.compile(r"\x03*(?:[ \t\n\r\f\v.()/-]\x03*){9,}")
TOKEN = re.compile(r"[0-9](?:[.()/-]*[0-9])*")
IPV4 = re.compile(r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}")
NON_DIGIT = re.compile(r"[^0-9]")
# IBANs are found from their check digits, the first run of digits after the two letters of the
# country code: a pattern starting with two letters would stop at every word of prose.
IBAN_SEPARATOR = r"[ \t\n\r\f\v.\x03-]{0,6}"
# The country code just before a run of digits (searched in the fifteen characters before it).
IBAN_COUNTRY = re.compile(rf"(?:^|[^\w\x01])([A-Za-z]){IBAN_SEPARATOR}([A-Za-z]){IBAN_SEPARATOR}$")
NOT_ALNUM = re.compile(r"[^A-Za-z0-9]")
# E-mail addresses are found from their "@" outwards: scanning every word for a local part is slow.
# The local part takes what RFC 6531 allows that prose rarely glues to an address (not quotes, "=",
# "/" or brackets) and starts at a letter or digit; labels and the top-level domain may be Unicode.
EMAIL_LOCAL = re.compile(r"[A-Za-z0-9_\x01\x03\x04.%+'!#$&*~^-]{1,64}$")
EMAIL_LOCAL_LEADING = ".%+'!#$&*~^-\x03"
EMAIL_DOMAIN = re.compile(
    r"(?:[A-Za-z0-9_\x01\x03\x04-]+\.)+(?:[Xx][Nn]--[A-Za-z0-9-]+|[A-Za-z\x01\x04][A-Za-z\x01\x03\x04]+)"
)
# IPv6 addresses are found from their colons (a pattern scanning the whole text for one costs as much
# as all the rest when a single "10:30:00" is in it).
IPV6 = re.compile(r"(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9]{1,3}(?:\.[0-9]{1,3}){3}|[0-9A-Fa-f]{0,4})(?![\w\x01:])")
HEX_OR_COLON = frozenset("0123456789abcdefABCDEF:")
# A North American number as dialled at home: maybe a 1, an area code and an exchange not starting
# with 0 or 1, four more digits.
NANP = re.compile(r"1?[2-9][0-9]{2}[2-9][0-9]{6}")


def _fold_char(code: int) -> str:
    char = chr(code)
    if code < 0x80:
        return char
    if char.isdecimal():
        return str(unicodedata.decimal(char))
    if 0xFF01 <= code <= 0xFF5E:  # full-width ASCII: "４", "＠", "Ｇ", "－", "．"
        return chr(code - 0xFEE0)
    if code in AT_SIGNS:
        return "@"
    category = unicodedata.category(char)
    if category == "Pd" or code in MINUS_SIGNS:
        return "-"
    if code in DOTS:
        return "."
    if char.isspace() or code in BLANKS:
        return " "
    if category == "Cf" or code in INVISIBLE_MARKS:
        return INVISIBLE
    if any(low <= code <= high for low, high in UNSPACED_SCRIPTS):
        return UNSPACED
    if category[0] in "LMN" or category == "Pc":
        return LETTER
    return SYMBOL


class _FoldTable(dict[int, str]):
    """`str.translate` table filled on first sight of each character (the Unicode range is large;
    a text uses few of it). Bounded, so hostile text cannot grow it without end."""

    LIMIT = 65_536

    def __missing__(self, code: int) -> str:
        folded = _fold_char(code)
        if len(self) < self.LIMIT:
            self[code] = folded
        return folded


FOLD_TABLE = _FoldTable()
# Latin-1 characters (accented letters, the no-break space, the soft hyphen) fold byte for byte.
LATIN1_FOLD = bytes(ord(_fold_char(code)) for code in range(256))
FULL_WIDTH_LETTERS = re.compile(r"[\uff21-\uff3a\uff41-\uff5a]")
UNSPACED_LETTERS = re.compile("[" + "".join(f"{chr(low)}-{chr(high)}" for low, high in UNSPACED_SCRIPTS) + "]")


def _fold_errors(error: UnicodeError) -> tuple[str, int]:
    """Encoding error handler: each run of characters beyond Latin-1 comes here once, folded."""
    if not isinstance(error, UnicodeEncodeError):
        raise error
    chunk = error.object[error.start : error.end]
    if chunk.isalpha() and not FULL_WIDTH_LETTERS.search(chunk) and not UNSPACED_LETTERS.search(chunk):
        return LETTER * len(chunk), error.end
    return chunk.translate(FOLD_TABLE), error.end


codecs.register_error("tollgate.redact.fold", _fold_errors)


def fold(text: str) -> str:
    """The text, one character for one character, as the detectors read it (see the module doc)."""
    if text.isascii():
        return text
    # Where characters beyond Latin-1 are few, the Latin-1 encoder hands over each run of them and
    # a byte table folds the rest, all at C speed; where they are many (a text in Cyrillic, say),
    # translating every character costs less than a call per run.
    wide = len(text) - len(text.encode("latin-1", "ignore"))
    if wide * 24 < len(text):
        return text.encode("latin-1", "tollgate.redact.fold").translate(LATIN1_FOLD).decode("ascii")
    return text.translate(FOLD_TABLE)


@lru_cache(maxsize=4096)
def _valid_ip(text: str) -> bool:
    if IPV4.fullmatch(text):  # leading zeros too ("192.168.001.001"), which many programs accept
        return all(int(octet) <= 255 for octet in text.split("."))
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


@lru_cache(maxsize=512)
def _national_lengths(country_code: int) -> frozenset[int]:
    """How many digits may follow that country code (empty: any number of them)."""
    lengths: set[int] = set()
    for region in phonenumbers.COUNTRY_CODE_TO_REGION_CODE[country_code]:
        metadata = phonenumbers.PhoneMetadata.metadata_for_region_or_calling_code(country_code, region)
        if metadata is None or metadata.general_desc is None or not metadata.general_desc.possible_length:
            return frozenset()
        lengths.update(metadata.general_desc.possible_length)
    return frozenset(lengths)


def _possible_international(digits: str) -> bool:
    """A country code, then a possible number of digits for it: cheap, and it spares most look-alikes
    the parse, which costs a tenth of a millisecond."""
    for size in (1, 2, 3):
        country_code = int(digits[:size])
        if country_code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            lengths, national = _national_lengths(country_code), digits[size:]
            # "+44 (0)20 7946 0958": a trunk 0 may be written after the country code.
            return not lengths or len(national) in lengths or (national[:1] == "0" and len(national) - 1 in lengths)
    return False


@lru_cache(maxsize=4096)
def _valid_phone(digits: str, international: bool) -> bool:
    if international and not _possible_international(digits):
        return False
    if not international and not NANP.fullmatch(digits):
        # Dialled from the US, a number abroad starts with 011. A number written as dialled at home
        # elsewhere (07400 123456, 030 1234567, 06 12 34 56 78, 98765 43210): valid in one of
        # TOLLGATE_PHONE_REGIONS.
        if digits.startswith("011") and len(digits) > 10:
            return _valid_phone(digits[3:], True)
        return ((digits.startswith("0") and 9 <= len(digits) <= 13) or len(digits) == 10) and _valid_national(digits)
    try:
        number = phonenumbers.parse(f"+{digits}" if international else digits, None if international else "US")
        valid = bool(phonenumbers.is_valid_number(number))
    except phonenumbers.NumberParseException:
        valid = False
    if not valid and not international and len(digits) == 10:  # shaped like a North American number
        return _valid_national(digits)
    return valid


def _valid_national(digits: str) -> bool:
    """Valid as dialled at home in one of TOLLGATE_PHONE_REGIONS: with the trunk 0, any number; without
    it (ten digits, as Indian mobiles are written), only a mobile number, since many a ten-digit figure
    would pass for some landline."""
    trunk = digits.startswith("0")
    for region in settings.TOLLGATE_PHONE_REGIONS:
        try:
            number = phonenumbers.parse(digits, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number) and (
            trunk or phonenumbers.number_type(number) == phonenumbers.PhoneNumberType.MOBILE
        ):
            return True
    return False


def _valid_ssn(digits: str) -> bool:
    return digits[:3] not in ("000", "666") and digits[0] != "9" and digits[3:5] != "00" and digits[5:] != "0000"


@lru_cache(maxsize=4096)
def _classify_folded(run: str, phones: bool = True) -> str | None:
    """What the run is as a whole; without `phones`, phone numbers are not looked for."""
    digits = NON_DIGIT.sub("", run)
    count = len(digits)
    international = run.lstrip(" (\x03").startswith("+")
    address = run.lstrip("(")
    if count <= 12 and IPV4.fullmatch(address) and _valid_ip(address):
        return "IP"
    # Phone numbers: 7 to 15 digits after "+" or "00" (no card starts with 0); else 10 to 15 digits,
    # read as dialled in the US.
    if international:
        return "PHONE" if phones and 7 <= count <= 15 and _valid_phone(digits, True) else None
    # Any grouping and any separators: "219-09-9999", "219 09 9999", "219099999", "219.09.9999".
    if count == 9 and _valid_ssn(digits):
        return "SSN"
    if phones and digits.startswith("00") and 9 <= count <= 17 and _valid_phone(digits[2:], True):
        return "PHONE"
    if 13 <= count <= 19 and luhn.is_valid(digits):
        return "CARD"
    if phones and 10 <= count <= 15 and _valid_phone(digits, False):
        return "PHONE"
    return None


@dataclass
class _Budget:
    """Phone-number look-ups left for the windows inside runs of one text. Each costs up to a tenth of
    a millisecond, and a run of many short groups ("12 34 56 ...") has many windows: without a bound,
    15 KB of them would take seconds. Whole runs are always looked up."""

    phones: int = 64


def _split_run(run: str, free_start: bool, free_end: bool, budget: _Budget) -> tuple[tuple[int, int, str], ...]:
    """(offset, length, kind) of the personal data in a run. The whole run first; else the run may
    hold several numbers side by side (or one glued to a word at an end): the tokens of the run are
    covered with classified windows of consecutive tokens so that the most digits are covered."""
    if free_start and free_end and len(run) <= 128:  # 19 digits and their separators at most
        kind = _classify_folded(run)
        if kind:
            return ((0, len(run), kind),)
    spans = [match.span() for match in TOKEN.finditer(run)]
    if len(spans) == 1:
        return ()  # one token, and not personal data as a whole (or glued to a word)
    spans[0] = (0, spans[0][1])  # a leading "+" or "(" belongs to the first token
    digits = [len(NON_DIGIT.sub("", run[start:end])) for start, end in spans]
    count = len(spans)
    # best[i]: the most digits coverable from token i on, and the windows that do it.
    best: list[tuple[int, tuple[tuple[int, int, str], ...]]] = [(0, ())] * (count + 1)
    for first in range(count - 1, -1, -1):
        chosen = best[first + 1]
        covered = 0
        for last in range(first, count):
            covered += digits[last]
            if covered > 19 or (last == count - 1 and not free_end):
                break
            if covered < 4 or (first == 0 and not free_start) or (first == 0 and last == count - 1):
                continue  # too short for anything, glued to a word, or the whole run (classified above)
            start, end = spans[first][0], spans[last][1]
            phones = budget.phones > 0
            if phones and 7 <= covered <= 17:
                budget.phones -= 1
            kind = _classify_folded(run[start:end], phones)
            if kind and covered + best[last + 1][0] > chosen[0]:
                chosen = (covered + best[last + 1][0], ((start, end - start, kind), *best[last + 1][1]))
        best[first] = chosen
    return best[0][1]


def _glued(folded: str, index: int, step: int, *, times: bool = False) -> bool:
    """Whether the character at `index` (just outside a number) glues the number to a word or to a
    decimal: a letter, digit or "_", or a "." with a digit beyond it; with `times`, a ":" with a
    digit beyond it too (the "10" of "2026-03-05 10:30" ends no phone number)."""
    if not 0 <= index < len(folded):
        return False
    char = folded[index]
    if char.isalnum() or char in "_\x01":
        return True
    beyond = index + step
    return (char == "." or (times and char == ":")) and 0 <= beyond < len(folded) and folded[beyond].isdigit()


def _number_start(folded: str, start: int) -> int:
    """Take in a leading "+" (maybe across a bracket, a space or an invisible character) and "("."""
    before = start
    while before > 0 and start - before < 3 and folded[before - 1] in " (\x03":
        before -= 1
    if before > 0 and folded[before - 1] == "+":
        start = before - 1
    while start > 0 and folded[start - 1] == "(":
        start -= 1
    return start


@lru_cache(maxsize=256)
def _iban_length(country: str) -> int | None:
    """The length of an IBAN of that country (from the registry `python-stdnum` ships), if any."""
    properties = numdb.get("iban").info(country)[0][1]
    if "bban" not in properties:
        return None
    return 4 + sum(int(size) for size in re.findall(r"(\d+)!", properties["bban"]))


@lru_cache(maxsize=64)
def _iban_pattern(length: int) -> re.Pattern[str]:
    return re.compile(rf"(?:[A-Za-z0-9]{IBAN_SEPARATOR}){{{length - 1}}}[A-Za-z0-9](?![A-Za-z0-9_\x01])")


@lru_cache(maxsize=4096)
def _valid_iban(compact: str) -> bool:
    return bool(iban.is_valid(compact))


def _iban_at(folded: str, digits: int) -> tuple[int, int] | None:
    """The IBAN whose check digits start at `digits`: a country code before them (in any case, maybe
    spaced), as many letters and digits after as that country's IBANs have, and a valid checksum."""
    country = IBAN_COUNTRY.search(folded, max(0, digits - 15), digits)
    if not country:
        return None
    length = _iban_length((country.group(1) + country.group(2)).upper())
    if length is None:
        return None
    candidate = _iban_pattern(length).match(folded, country.start(1))
    if candidate and _valid_iban(NOT_ALNUM.sub("", candidate.group(0)).upper()):
        return candidate.span()
    return None


def _numbers(folded: str) -> Iterator[tuple[int, int, str]]:
    """IBANs, IP addresses, SSNs, cards and phone numbers, from one scan for runs of digits."""
    covered = 0
    budget = _Budget()
    for match in NUMBER_RUN.finditer(folded):
        start = match.start()
        if start < covered:
            continue
        if start > 1:
            found = _iban_at(folded, start)
            if found:
                yield (*found, "IBAN")
                covered = found[1]
                continue
        run = match.group(0).rstrip(SEPARATORS)
        if len(run) < 4:
            continue
        gap = LONG_GAP.search(run)
        while gap:  # a long gap ends a number: the rest is scanned again from after it
            yield from _number_run(folded, start, start + gap.start(), budget)
            start += gap.end()
            run = run[gap.end() :]
            gap = LONG_GAP.search(run)
        yield from _number_run(folded, start, start + len(run), budget)


def _number_run(folded: str, start: int, end: int, budget: _Budget) -> Iterator[tuple[int, int, str]]:
    start = _number_start(folded, start)
    run = folded[start:end]
    if "." in run:
        # IPv4 addresses inside a longer run ("10.0.0.1-10.0.0.9"), not inside a dotted number.
        for address in IPV4.finditer(folded, start, end):
            at, to = address.span()
            if not _glued(folded, at - 1, -1) and not _glued(folded, to, 1) and _valid_ip(address.group(0)):
                yield at, to, "IP"
    free_start = not _glued(folded, start - 1, -1, times=True)
    free_end = not _glued(folded, end, 1, times=True)
    for offset, length, kind in _split_run(run, free_start, free_end, budget):
        yield start + offset, start + offset + length, kind


def _ipv6s(folded: str) -> Iterator[tuple[int, int, str]]:
    """From each colon back to the start of its hex-and-colon word, which must stand alone."""
    colon, tried = folded.find(":"), -1
    while colon != -1:
        start = colon
        while start > 0 and colon - start < 40 and folded[start - 1] in HEX_OR_COLON:
            start -= 1
        before = folded[start - 1] if start else " "
        match = None
        if start != tried and not (before.isalnum() or before in "_.\x01:"):
            match = IPV6.match(folded, start)
            if match and match.end() > colon and _valid_ip(match.group(0)):
                yield (*match.span(), "IP")
            else:
                match = None
        tried = start
        colon = folded.find(":", match.end() if match else colon + 1)


def _emails(folded: str) -> Iterator[tuple[int, int, str]]:
    at = folded.find("@")
    while at != -1:
        local = EMAIL_LOCAL.search(folded, max(0, at - 64), at)
        domain = EMAIL_DOMAIN.match(folded, at + 1)
        if local and domain:
            start = local.start()
            while start < at and folded[start] in EMAIL_LOCAL_LEADING:
                start += 1
            if start < at:
                yield start, domain.end(), "EMAIL"
        at = folded.find("@", at + 1)


# The registry. Spans are replaced earliest start first, and a span starting inside one already replaced
# is left alone; on a tie at the same start the version's own terms and patterns win, then the more
# specific detector: the one with the lower priority number. Priorities are distinct, so the order is
# the registry's alone, whatever the order of registration.

KIND = re.compile(r"[A-Z][A-Z0-9_]*")  # what a placeholder's kind may be: "<KIND_1>"


@dataclass(frozen=True)
class Detector:
    """One kind of personal data and how to find it: `find(folded)` yields (start, end, kind) over the
    folded copy of a text (`fold`), each kind one of `kinds`."""

    name: str
    kinds: tuple[str, ...]
    find: Callable[[str], Iterable[tuple[int, int, str]]]
    priority: int

    def __post_init__(self) -> None:
        if not self.kinds or not all(KIND.fullmatch(kind) for kind in self.kinds):
            raise ValueError(f"detector {self.name!r}: kinds must be upper-case words, got {self.kinds!r}")


_registry: tuple[Detector, ...] = ()


def detector_register(detector: Detector) -> Detector:
    """Add a detector; it runs in priority order from the next text on. A name or a priority already
    registered is refused: ties between detectors must be decided by their priorities."""
    global _registry
    for other in _registry:
        if other.name == detector.name or other.priority == detector.priority:
            raise ValueError(f"detector {detector.name!r} clashes with {other.name!r} (name or priority)")
    _registry = tuple(sorted((*_registry, detector), key=lambda registered: registered.priority))
    return detector


def detector_unregister(name: str) -> Detector:
    """Remove the detector of that name, and hand it back."""
    global _registry
    (removed,) = [detector for detector in _registry if detector.name == name]
    _registry = tuple(detector for detector in _registry if detector.name != name)
    return removed


def detectors() -> tuple[Detector, ...]:
    """The registered detectors, most specific (lowest priority number) first."""
    return _registry


# The built-ins, most specific first: an e-mail address holding digits is an address, and a number (an
# IPv4 address among them) is read as one before the IPv6 scan sees its colons.
detector_register(Detector("email", ("EMAIL",), _emails, priority=100))
detector_register(Detector("numbers", ("IBAN", "IP", "SSN", "CARD", "PHONE"), _numbers, priority=200))
detector_register(Detector("ipv6", ("IP",), _ipv6s, priority=300))
