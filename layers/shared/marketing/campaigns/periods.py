"""Period keys: which DAILY or WEEKLY window an event belongs to, from its own `occurred_at` (UTC), so a
redelivered event always lands in the same period. Keys of one period kind sort in time order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from marketing.campaigns.models import Period

ONCE_KEY = "ONCE"
# How long after its period (or its counting, for ONCE) an event's progress marker is kept: longer than any
# redelivery takes (SQS keeps a message 14 days at most, EventBridge retries for 24 hours).
REDELIVERY_WINDOW = timedelta(days=15)


def period_key(period: Period | str, occurred_at: datetime) -> str:
    moment = occurred_at.astimezone(UTC)
    if period == Period.DAILY:
        return "D" + moment.strftime("%Y-%m-%d")
    if period == Period.WEEKLY:
        year, week, _ = moment.isocalendar()
        return f"W{year:04d}-{week:02d}"
    return ONCE_KEY


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def period_end(key: str) -> datetime | None:
    """When the period of `key` ends (None for ONCE, which never does)."""
    if key.startswith("D"):
        return datetime.strptime(key[1:], "%Y-%m-%d").replace(tzinfo=UTC) + timedelta(days=1)
    if key.startswith("W"):
        year, week = key[1:].split("-")
        return datetime.fromisocalendar(int(year), int(week), 1).replace(tzinfo=UTC) + timedelta(weeks=1)
    return None


def marker_expiry(key: str, counted_at: datetime) -> int:
    """Epoch seconds at which the marker of an event counted at `counted_at` in period `key` may go (TTL):
    a redelivery cannot come later, and once the period is over, no event of it counts anyway."""
    return int((max(period_end(key) or counted_at, counted_at) + REDELIVERY_WINDOW).timestamp())
