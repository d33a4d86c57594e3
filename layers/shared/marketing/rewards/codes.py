"""Redeem code strings: an unambiguous alphabet, a check character, and unpredictable codes that are unique
by construction.

A code is `[PREFIX-]BODY` + one check character. BODY is a keyed pseudo-random permutation (a Feistel network
with cycle walking) of a sequence number per app of a tenant, written in the 31-letter alphabet. Distinct
sequence numbers give distinct bodies, so a batch needs no conditional write per code; without the app's secret
key nobody can derive one code from another. The check character (weighted, mod 31) refuses a mistyped code
without reading the database.
"""

from __future__ import annotations

import hashlib
import re

from marketing.core.ids import UNAMBIGUOUS_ALPHABET as ALPHABET

_BASE = len(ALPHABET)  # 31, a prime
_INDEX = {c: i for i, c in enumerate(ALPHABET)}
_ROUNDS = 4
_FORMAT = re.compile(rf"^(?:([A-Z0-9]{{1,8}})-)?([{ALPHABET}]{{5,}})$")


def check_char(body: str) -> str:
    """The position-weighted sum mod 31 (ISO 7064 style). 31 is prime and weights 1..n stay below it, so every
    single wrong character and every swap of two different neighbours changes the sum: both are refused."""
    return ALPHABET[sum((i + 1) * _INDEX[c] for i, c in enumerate(body)) % _BASE]


def normalize(code: str) -> str:
    return "".join(code.split()).upper()


def is_well_formed(code: str) -> bool:
    """The shape and check character of a normalized code: no database read."""
    match = _FORMAT.match(code)
    if not match:
        return False
    body = match.group(2)
    return check_char(body[:-1]) == body[-1]


def suffix(code: str) -> str:
    return code[-4:]


def mask(code: str) -> str:
    return "*" * (len(code) - 4) + code[-4:]


class CodeMaker:
    """Turns sequence numbers into codes of one length with one app's key: a bijection on [0, 31^length)."""

    def __init__(self, key: bytes, length: int, prefix: str | None = None):
        self.key, self.length, self.prefix = key, length, prefix
        self.domain = _BASE ** length
        bits = (self.domain - 1).bit_length()
        self.half = (bits + 1) // 2
        self.mask = (1 << self.half) - 1

    def _round(self, number: int, value: int) -> int:
        digest = hashlib.blake2b(value.to_bytes(8, "big"), key=self.key, digest_size=8,
                                 person=bytes([number, self.length]) + b"rc").digest()
        return int.from_bytes(digest, "big") & self.mask

    def _permute(self, value: int) -> int:
        left, right = value >> self.half, value & self.mask
        for number in range(_ROUNDS):
            left, right = right, left ^ self._round(number, right)
        return (left << self.half) | right

    def body(self, seq: int) -> str:
        if not 0 <= seq < self.domain:
            raise ValueError("sequence number outside the code space")
        value = self._permute(seq)
        while value >= self.domain:  # cycle walking keeps the permutation inside [0, domain)
            value = self._permute(value)
        chars = []
        for _ in range(self.length):
            value, digit = divmod(value, _BASE)
            chars.append(ALPHABET[digit])
        body = "".join(reversed(chars))
        return body + check_char(body)

    def code(self, seq: int) -> str:
        body = self.body(seq)
        return f"{self.prefix}-{body}" if self.prefix else body
