"""The one JSON parser of the REST API: it refuses, as 400 `invalid_request`, every body it cannot hand on
safely, instead of letting it fail later as a 500.

- invalid UTF-8 (JSON is UTF-8, RFC 8259);
- nesting deeper than MAX_DEPTH: Python's parser recurses, and a body of 10,000 `[` would otherwise
  end in RecursionError (or, on a thread with a small stack, worse);
- NUL characters and unpaired surrogates in keys or strings: PostgreSQL cannot store NUL, and a lone
  surrogate cannot be encoded to send upstream;
- NaN and ±Infinity (also a float literal that overflows to infinity) and numbers written with more than
  MAX_NUMBER_DIGITS characters: none is a number a caller means.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import IO, Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

MAX_DEPTH = 64
MAX_NUMBER_DIGITS = 100

# A JSON string literal (escapes included), removed before counting brackets so that `"[[["` is not depth.
_STRING_LITERAL = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")
# Surrogates left after decoding are unpaired: json joins a valid `\ud83d\ude00` pair into one character.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


class _Refused(ValueError):
    """A number the parser will not accept (raised from json's hooks, so it stops parsing at once)."""


def _reject_constant(name: str) -> Any:
    raise _Refused(f"{name} is not a number this API accepts.")


def _bounded_int(text: str) -> int:
    if len(text) > MAX_NUMBER_DIGITS:
        raise _Refused(f"Numbers may have at most {MAX_NUMBER_DIGITS} digits.")
    return int(text)


def _bounded_float(text: str) -> float:
    if len(text) > MAX_NUMBER_DIGITS:
        raise _Refused(f"Numbers may have at most {MAX_NUMBER_DIGITS} digits.")
    value = float(text)
    if not math.isfinite(value):
        raise _Refused("Numbers must be finite.")
    return value


def json_nesting_exceeds(text: str, limit: int) -> bool:
    """Whether arrays and objects in `text` nest deeper than `limit` (strings ignored), without parsing."""
    depth = 0
    for bracket in _BRACKET.findall(_STRING_LITERAL.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        if depth > limit:
            return True
    return False


def _holds_unstorable_text(value: Any) -> bool:
    """Whether any key or string in the parsed document holds NUL or an unpaired surrogate."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if _UNSTORABLE.search(item):
                return True
        elif isinstance(item, Mapping):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


def json_loads_strict(raw: bytes) -> Any:
    """The document in `raw`, or ParseError naming what is wrong with it."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ParseError("The body is not valid UTF-8.") from None
    if json_nesting_exceeds(text, MAX_DEPTH):
        raise ParseError(f"JSON may nest at most {MAX_DEPTH} arrays or objects deep.")
    try:
        document = json.loads(text, parse_constant=_reject_constant, parse_int=_bounded_int, parse_float=_bounded_float)
    except _Refused as exc:
        raise ParseError(str(exc)) from None
    except RecursionError:  # the bracket count above should make this unreachable; never a 500
        raise ParseError(f"JSON may nest at most {MAX_DEPTH} arrays or objects deep.") from None
    except ValueError as exc:  # JSONDecodeError: the message names the line and column, never the data
        raise ParseError(f"The body is not valid JSON: {exc}") from None
    if _holds_unstorable_text(document):
        raise ParseError("Strings and keys may not contain NUL characters or unpaired surrogates.")
    return document


class StrictJSONParser(JSONParser):
    """DRF's JSON parser with the refusals above (REST_FRAMEWORK's only parser)."""

    def parse(
        self, stream: IO[Any], media_type: str | None = None, parser_context: Mapping[str, Any] | None = None
    ) -> Any:
        return json_loads_strict(stream.read())
