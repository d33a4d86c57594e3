"""Code strings: the check character refuses mistypes without a read; codes are unique by construction and
differ per key."""

from __future__ import annotations

import secrets

from hypothesis import given, settings
from hypothesis import strategies as st

from marketing.core.ids import UNAMBIGUOUS_ALPHABET
from marketing.rewards import codes


def test_every_single_character_mistype_is_refused():
    maker = codes.CodeMaker(secrets.token_bytes(32), 10)
    for seq in range(50):
        code = maker.code(seq)
        assert codes.is_well_formed(code)
        for position in range(len(code)):
            for char in UNAMBIGUOUS_ALPHABET:
                if char != code[position]:
                    assert not codes.is_well_formed(code[:position] + char + code[position + 1:])


def test_every_swap_of_two_different_neighbours_is_refused():
    maker = codes.CodeMaker(secrets.token_bytes(32), 12)
    for seq in range(200):
        code = maker.code(seq)
        for i in range(len(code) - 2):  # within the random part; the check character is compared below
            if code[i] != code[i + 1]:
                assert not codes.is_well_formed(code[:i] + code[i + 1] + code[i] + code[i + 2:])


def test_codes_are_unique_by_construction_and_depend_on_the_key():
    key = secrets.token_bytes(32)
    short = codes.CodeMaker(key, 8)
    assert len({short.code(seq) for seq in range(30_000)}) == 30_000
    assert codes.CodeMaker(key, 8).code(7) == short.code(7)  # deterministic: an export can rebuild its codes
    assert codes.CodeMaker(secrets.token_bytes(32), 8).code(7) != short.code(7)
    prefixed = codes.CodeMaker(key, 8, "VIP").code(7)
    assert prefixed == "VIP-" + short.code(7) and codes.is_well_formed(prefixed)


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=31**9 - 1), st.integers(min_value=0, max_value=31**9 - 1))
def test_distinct_sequence_numbers_never_share_a_code(a, b):
    maker = codes.CodeMaker(b"k" * 32, 9)
    assert (maker.code(a) == maker.code(b)) == (a == b)


def test_normalize_and_mask():
    assert codes.normalize(" vip-ab cd ") == "VIP-ABCD"
    assert codes.mask("VIP-ABCDEFGH") == "********EFGH" and codes.suffix("VIP-ABCDEFGH") == "EFGH"
    assert not codes.is_well_formed("not a code") and not codes.is_well_formed("VIPVIPVIPVIPVIPVIP-ABCDEF")
