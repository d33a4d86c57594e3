"""UTC time, ISO 8601 in JSON. One place so tests and services agree on the format."""

from __future__ import annotations

from datetime import UTC, datetime


def now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """ISO 8601 in UTC with millisecond precision and a `Z` suffix: sorts as text (the year has its four
    digits, which `strftime("%Y")` drops before year 1000)."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now_iso() -> str:
    return iso(now())
