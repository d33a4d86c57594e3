"""Domain events on the EventBridge bus, for the statistics and campaign capabilities.

Delivery is at least once: a service that repeats a write (an idempotent replay) publishes the same event
again with the same `event_id`, so an event lost between the write and `PutEvents` is sent on the retry,
and consumers drop duplicates by `event_id`.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from marketing.core import aws, config
from marketing.core.clock import now_iso
from marketing.core.identity import Caller

SOURCE_PREFIX = "marketing."


@cache
def _client():
    return aws.client("events")


def envelope(caller: Caller, event_id: str, detail: dict[str, Any], occurred_at: str | None = None) -> dict:
    # The envelope's fields come last: no detail can overwrite the tenant or the event id.
    return {**detail, "event_id": event_id, "tenant_id": caller.tenant_id, "app_id": caller.app_id,
            "occurred_at": occurred_at or now_iso()}


def publish(caller: Caller, *, source: str, detail_type: str, event_id: str, detail: dict[str, Any],
            occurred_at: str | None = None) -> None:
    """Put one domain event on the bus. `source` is the capability (`tracking`), `detail_type` the event
    (`track.new_user`). Raises if EventBridge refuses it, so the caller's retry sends it again."""
    publish_many(caller, source=source, detail_type=detail_type, entries=[(event_id, detail)],
                 occurred_at=occurred_at)


def publish_many(caller: Caller, *, source: str, detail_type: str, entries: list[tuple[str, dict[str, Any]]],
                 occurred_at: str | None = None) -> None:
    """`publish` for many events of one type, (event_id, detail) each, ten to a PutEvents request."""
    bus = config.event_bus_name()
    for start in range(0, len(entries), 10):
        answer = _client().put_events(Entries=[
            {"EventBusName": bus, "Source": SOURCE_PREFIX + source, "DetailType": detail_type,
             "Detail": json.dumps(envelope(caller, event_id, detail, occurred_at), separators=(",", ":"))}
            for event_id, detail in entries[start:start + 10]])
        if answer.get("FailedEntryCount"):
            raise RuntimeError(f"EventBridge refused {detail_type}: {answer['Entries']}")
