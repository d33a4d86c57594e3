"""Period keys: which DAILY or WEEKLY window an event belongs to, from its own `occurred_at` (UTC), so a
redelivered event always lands in the same period. Keys of one period kind sort in time order."""

from __future__ import annotations

from datetime import UTC, datetime

from marketing.campaigns.models import Period

ONCE_KEY = "ONCE"


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
