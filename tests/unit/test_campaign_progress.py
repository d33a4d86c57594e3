"""Campaign progress stays a bounded item however many events a period counts: each counted event leaves a
marker item of its own (written with the progress, expiring after the period), not an id in the progress."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from boto3.dynamodb.conditions import Key

from marketing.campaigns import dal, engine
from marketing.campaigns.periods import REDELIVERY_WINDOW, marker_expiry, period_end
from marketing.core import dynamo

EVENTS = 10_000
AMOUNT = 3  # cents per event
OCCURRED = datetime(2026, 11, 23, 16, tzinfo=UTC)
TASK = {"task_id": "spend", "task_type": "CUSTOM", "event_type": "order.paid", "reward_id": "r1", "period": "WEEKLY",
        "condition": {"type": "sum", "field": "cents", "operator": ">=", "value": EVENTS * AMOUNT}}


def _event(n: int) -> engine.TaskEvent:
    return engine.TaskEvent(tenant_id="t1", app_id="app1", event_id=f"e{n}", event_type="order.paid",
                            user_id="u-1", occurred_at=OCCURRED, data={"cents": AMOUNT})


def _progress_item() -> dict:
    return dynamo.table().get_item(Key={"pk": "T#t1#A#app1#U#u-1", "sk": "TASKPROG#spend"},
                                   ConsistentRead=True)["Item"]


def test_ten_thousand_events_of_one_sum_task_keep_the_progress_item_small_and_count_once(stack):
    # Given a weekly `sum` task reached at the 10,000th event of one user
    # When 10,000 distinct events count for that user
    outcomes = [engine.advance(_event(n), TASK, "c1", "u-1") for n in range(1, EVENTS + 1)]

    # Then every event counted, the last one completed the task, and progress is their sum
    assert outcomes[:-1] == ["COUNTED"] * (EVENTS - 1) and outcomes[-1] == "COMPLETED"
    item = _progress_item()
    assert item["progress"] == EVENTS * AMOUNT and item["completed_period"] == "W2026-48"
    # And the progress item holds no event ids: a few hundred bytes, not 10,000 ids (~100 KB)
    assert len(json.dumps(dynamo.plain(item))) < 600
    assert "event_ids" not in item
    # And each event left one marker that expires after the week and the redelivery window
    markers = dynamo.query_all(KeyConditionExpression=Key("pk").eq("T#t1#A#app1#U#u-1")
                               & Key("sk").begins_with("TASKEV#spend#"))
    assert len(markers) == EVENTS
    assert min(int(m["ttl"]) for m in markers) >= (period_end("W2026-48") + REDELIVERY_WINDOW).timestamp()
    # And the 10,000th event, delivered again, counts nothing
    assert engine.advance(_event(EVENTS), TASK, "c1", "u-1") == "DUPLICATE"
    assert _progress_item()["progress"] == EVENTS * AMOUNT


def test_a_redelivered_event_is_not_counted_twice(stack):
    # Given a sum task far from its target, and two events counted
    task = {**TASK, "condition": {**TASK["condition"], "value": 1_000}}
    assert engine.advance(_event(1), task, "c1", "u-1") == "COUNTED"
    assert engine.advance(_event(2), task, "c1", "u-1") == "COUNTED"
    # When the first one comes again
    outcome = engine.advance(_event(1), task, "c1", "u-1")
    # Then it is recognised as a repeat and the progress moved once per event
    assert outcome == "DUPLICATE"
    assert _progress_item()["progress"] == 2 * AMOUNT


def test_a_redelivered_event_is_refused_by_dynamodb_not_by_a_read(stack):
    # Given an event counted once
    dal.add_progress("t1#A#app1", "spend", "u-1", period_key="W2026-48", event_id="e1", amount=AMOUNT,
                     max_count=None, expires=2_000_000_000)
    # When the same event is counted again directly against the table
    try:
        dal.add_progress("t1#A#app1", "spend", "u-1", period_key="W2026-48", event_id="e1", amount=AMOUNT,
                         max_count=None, expires=2_000_000_000)
        refused = None
    except dal.Refused as exc:
        refused = exc
    # Then the marker's condition refused it, naming the progress as it is
    assert refused is not None and refused.repeat and refused.item["progress"] == AMOUNT


def test_markers_of_a_once_task_live_the_redelivery_window_from_counting():
    counted = datetime(2026, 11, 23, tzinfo=UTC)
    assert marker_expiry("ONCE", counted) == int((counted + REDELIVERY_WINDOW).timestamp())
    # A daily period's marker outlives the day and the window, even when counted early in it
    day_end = datetime(2026, 11, 24, tzinfo=UTC)
    assert marker_expiry("D2026-11-23", counted) == int((day_end + REDELIVERY_WINDOW).timestamp())
    # A late delivery keeps its marker the window from when it counted
    late = datetime(2026, 12, 20, tzinfo=UTC)
    assert marker_expiry("D2026-11-23", late) == int((late + REDELIVERY_WINDOW).timestamp())
