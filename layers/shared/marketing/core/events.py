"""Domain events on the EventBridge bus, for the statistics and campaign capabilities.

A write that owes events commits them with itself (a transactional outbox): `outbox(...)` is one more
`Put` for the write's own `TransactWriteItems`, an item `pk T#{scope}#OUTBOX#{type}#{event_id}, sk OUTBOX` holding
the event's `PutEvents` entry. Either the change and its events commit, or neither. The table's stream feeds
`OutboxPublisher` (functions/outbox_publisher), which puts the entries of new outbox items on the bus; the
items expire by TTL. The request path answers once the write commits, whatever happens to publishing.

Delivery is at least once (a stream batch may be retried): every event carries a stable `event_id`, and
consumers drop duplicates by it. Events that follow no write of ours (`campaigns.trigger`) use `publish`.
"""

from __future__ import annotations

import json
import time
from functools import cache
from typing import Any

from marketing.core import aws, config
from marketing.core.clock import now_iso
from marketing.core.identity import Caller

SOURCE_PREFIX = "marketing."
OUTBOX_SK = "OUTBOX"  # the stream's filter (template.yaml, OutboxPublisher) selects new items by this key
OUTBOX_RETENTION_SECONDS = 7 * 86400  # longer than the stream keeps records (24 h): a DLQ entry can be redriven


@cache
def _client():
    return aws.client("events")


def envelope(caller: Caller, event_id: str, detail: dict[str, Any], occurred_at: str | None = None) -> dict:
    # The envelope's fields come last: no detail can overwrite the tenant or the event id.
    return {**detail, "event_id": event_id, "tenant_id": caller.tenant_id, "app_id": caller.app_id,
            "occurred_at": occurred_at or now_iso()}


def entry(caller: Caller, *, source: str, detail_type: str, event_id: str, detail: dict[str, Any],
          occurred_at: str | None = None) -> dict[str, str]:
    """The `PutEvents` entry of one domain event, without its bus. `source` is the capability (`tracking`),
    `detail_type` the event (`track.new_user`)."""
    return {"Source": SOURCE_PREFIX + source, "DetailType": detail_type,
            "Detail": json.dumps(envelope(caller, event_id, detail, occurred_at), separators=(",", ":"))}


def outbox(caller: Caller, *, source: str, detail_type: str, event_id: str, detail: dict[str, Any],
           occurred_at: str | None = None) -> dict[str, Any]:
    """The event as an outbox item's `Put`, to add to the transaction that makes the change it reports.
    Unconditional: a repeated write rewrites the same item (the stream reports a MODIFY, not published)."""
    return {"Put": {"Item": {
        "pk": f"T#{caller.scope}#OUTBOX#{detail_type}#{event_id}", "sk": OUTBOX_SK,  # ids repeat across types
        "entry": entry(caller, source=source, detail_type=detail_type, event_id=event_id, detail=detail,
                       occurred_at=occurred_at),
        "ttl": int(time.time()) + OUTBOX_RETENTION_SECONDS}}}


def put(entries: list[dict[str, str]]) -> None:
    """Put entries (at most 10) on the bus. Raises if EventBridge refuses any, so the caller retries."""
    answer = _client().put_events(Entries=[{"EventBusName": config.event_bus_name(), **e} for e in entries])
    if answer.get("FailedEntryCount"):
        raise RuntimeError(f"EventBridge refused {answer['FailedEntryCount']} entries: {answer['Entries']}")


def publish(caller: Caller, *, source: str, detail_type: str, event_id: str, detail: dict[str, Any],
            occurred_at: str | None = None) -> None:
    """Put one domain event on the bus now, for an event no write of ours commits (a trigger). Raises if
    EventBridge refuses it, so the caller's retry sends it again."""
    put([entry(caller, source=source, detail_type=detail_type, event_id=event_id, detail=detail,
               occurred_at=occurred_at)])


def publish_many(caller: Caller, *, source: str, detail_type: str, entries: list[tuple[str, dict[str, Any]]],
                 occurred_at: str | None = None) -> None:
    """`publish` for many events of one type, (event_id, detail) each, ten to a PutEvents request: a batch
    grant's, whose redelivered chunk publishes again what an earlier delivery may have lost."""
    events = [entry(caller, source=source, detail_type=detail_type, event_id=event_id, detail=detail,
                    occurred_at=occurred_at) for event_id, detail in entries]
    for start in range(0, len(events), 10):
        put(events[start:start + 10])
