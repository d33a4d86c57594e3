"""Identifiers and human-facing codes."""

from __future__ import annotations

import secrets
import time

# Crockford-like alphabet without the look-alikes 0/O, 1/I/L: codes are read aloud and typed from posters.
UNAMBIGUOUS_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
_SORTABLE_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"


def random_code(length: int, alphabet: str = UNAMBIGUOUS_ALPHABET) -> str:
    """An unpredictable code from the `secrets` module."""
    return "".join(secrets.choice(alphabet) for _ in range(length))


def new_id() -> str:
    """A time-ordered, unguessable id: 10 characters of milliseconds, then 16 random ones (like a ULID)."""
    millis = int(time.time() * 1000)
    head = ""
    for _ in range(10):
        millis, digit = divmod(millis, 32)
        head = _SORTABLE_ALPHABET[digit] + head
    return head + random_code(16, _SORTABLE_ALPHABET)
