"""Write-sharded items read as one: counts summed over their shards, listings merged in order with signed
page tokens, as if one partition held them."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from marketing.campaigns import dal as campaigns_dal
from marketing.campaigns import engine
from marketing.core import dynamo, pagination
from marketing.core.errors import BadRequest

SHARDS = [{"gsi1pk": f"T#t1#A#app1#LIST#{n}"} for n in range(5)]


def _page_through(limit: int, **kwargs) -> list[dict]:
    items, token, pages = [], None, 0
    while True:
        page, token = pagination.merged_page(dynamo.table(), partitions=SHARDS, index="gsi1", limit=limit,
                                             next_token=token, **kwargs)
        items += page
        pages += 1
        assert pages < 100
        if not token:
            return items


def test_a_listing_over_shards_pages_in_order_without_losing_or_repeating_an_item(stack):
    # Given 47 items spread unevenly over 5 shards, two of them at the same instant
    rng = random.Random(7)
    times = [f"2026-11-23T10:{rng.randrange(60):02d}:{rng.randrange(60):02d}Z" for _ in range(45)]
    times += [times[0], times[0]]
    for n, at in enumerate(times):
        shard = SHARDS[min(rng.randrange(7), 4)]["gsi1pk"]
        dynamo.table().put_item(Item={"pk": f"T#t1#A#app1#ITEM#{n:03d}", "sk": "ITEM", "gsi1pk": shard,
                                      "gsi1sk": at, "n": n})
    expected = sorted(times)
    # When the listing is read 4 items a page, forwards and backwards
    forwards = _page_through(4)
    backwards = _page_through(6, newest_first=True)
    # Then every item comes exactly once, in time order, both ways
    assert [i["gsi1sk"] for i in forwards] == expected
    assert [i["gsi1sk"] for i in backwards] == expected[::-1]
    assert len({i["pk"] for i in forwards}) == len({i["pk"] for i in backwards}) == len(times)


def test_a_page_token_of_a_sharded_listing_works_only_for_that_listing(stack):
    for n in range(3):
        dynamo.table().put_item(Item={"pk": f"T#t1#A#app1#ITEM#{n}", "sk": "ITEM", "gsi1pk": SHARDS[n]["gsi1pk"],
                                      "gsi1sk": f"2026-11-23T10:00:0{n}Z"})
    _, token = pagination.merged_page(dynamo.table(), partitions=SHARDS, index="gsi1", limit=1, next_token=None)
    assert token
    other = [{"gsi1pk": f"T#t2#A#app1#LIST#{n}"} for n in range(5)]
    with pytest.raises(BadRequest):
        pagination.merged_page(dynamo.table(), partitions=other, index="gsi1", limit=1, next_token=token)
    with pytest.raises(BadRequest):
        pagination.merged_page(dynamo.table(), partitions=SHARDS, index="gsi1", limit=1,
                               next_token=token[:-2] + "AA")


def test_a_tasks_completions_spread_over_shards_and_read_as_one(stack):
    # Given a task every user completes on their first event
    task = {"task_id": "hot", "task_type": "CUSTOM", "event_type": "visit", "reward_id": "r1", "period": "ONCE",
            "condition": {"type": "count", "operator": ">=", "value": 1}}
    users = [f"u-{n}" for n in range(30)]
    for user in users:
        event = engine.TaskEvent(tenant_id="t1", app_id="app1", event_id=f"e-{user}", event_type="visit",
                                 user_id=user, occurred_at=datetime(2026, 11, 23, tzinfo=UTC))
        assert engine.advance(event, task, "c1", user) == "COMPLETED"
    # Then no single stats item or log partition took them all
    shards = [dynamo.table().get_item(Key={"pk": f"T#t1#A#app1#TASK#hot#STATS#{n}", "sk": "STATS"}).get("Item")
              for n in range(campaigns_dal.TASK_SHARDS)]
    assert sum(1 for s in shards if s) >= 5 and max(int(s["total_completions"]) for s in shards if s) < 30
    # And the stats read sums the shards
    assert campaigns_dal.get_stats("t1#A#app1", "hot") == {"total_completions": 30, "unique_users": 30}
    # And the task's log lists every completion once, newest first, across pages
    listed, token = [], None
    while True:
        page, token = campaigns_dal.list_logs("t1#A#app1", task_id="hot", user_id=None, limit=4, next_token=token)
        listed += page
        if not token:
            break
    assert sorted(i["user_id"] for i in listed) == sorted(users)
    ids = [i["completion_id"] for i in listed]
    assert ids == sorted(ids, reverse=True)
