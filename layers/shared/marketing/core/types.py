"""Field types shared by the API models of every capability."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, Field

# Ids end up inside DynamoDB keys built with `#` separators: a strict charset keeps keys unambiguous.
ID_CHARS = r"[A-Za-z0-9_.:@-]"
Identifier = Annotated[str, Field(min_length=1, max_length=128, pattern=rf"^{ID_CHARS}+$")]
Limit = Annotated[int, Field(ge=1, le=100)]
Cents = Annotated[int, Field(ge=0, description="an amount in integer cents")]


def _integer_as_text(value: object) -> object:
    return str(value) if type(value) is int else value  # not bool: true is no id


# An id given as text or, as systems with numeric keys send it, as a JSON integer: kept as its decimal text,
# so 42 and "42" are one id. Answers always spell it as text.
AnyId = Annotated[Identifier, BeforeValidator(_integer_as_text, json_schema_input_type=int | Identifier)]


def _in_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("give a time zone, e.g. 2026-11-01T00:00:00Z")
    try:
        return value.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+05:00 is in year 0 in UTC
        raise ValueError("this time falls outside the years 1 to 9999 in UTC") from None


# A time with its zone, converted to UTC when read; a time whose UTC date does not exist is refused, not a crash.
UtcTime = Annotated[datetime, AfterValidator(_in_utc)]
