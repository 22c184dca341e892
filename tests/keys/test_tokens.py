from __future__ import annotations

import math

from keys.tokens import ALPHABET, RANDOM_CHARS, token_generate, token_parse


def test_tokens_name_their_environment_and_carry_enough_randomness():
    token = token_generate("staging")

    assert token.startswith("tg_stg_")
    assert RANDOM_CHARS * math.log2(len(ALPHABET)) >= 160
    assert token_parse(token) == ("staging", token[7:19])


def test_a_single_changed_character_breaks_the_checksum():
    token = token_generate("production")
    flipped = token[:10] + ("A" if token[10] != "A" else "B") + token[11:]

    assert token_parse(flipped) is None
    assert token_parse(token[:-1]) is None
    assert token_parse("tg_xyz_" + token[7:]) is None
