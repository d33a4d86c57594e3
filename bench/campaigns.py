"""The task engine through its real handler (TaskTriggerFunction) on moto: DynamoDB requests per event and
events per second, with the tenant holding 1, 10 and 100 active tasks of other event types. The request count
must stay flat: an event reads only the tasks listening to its own type.

Contention on a hot task: 10,000 users completing one task, and the share of every write and condition check
that lands on the hottest item and partition key (bench/support.py). The goal: no item takes more than
1.5 / TASK_SHARDS of them, and no partition key more than its share of 1,000 completions a second allows."""

from __future__ import annotations

import os
import time

import bench.support  # noqa: F401  (sets a safe environment first)
from bench.support import counting, recording, table
from tests.support import Function, mocked_stack

TIMED_EVENTS = 40
HOT_COMPLETIONS = 10_000
TARGET_RATE = 1_000  # completions a second for one task (docs/data-model.md, "Hot keys and limits")
PARTITION_WRITES = 1_000  # what one partition key takes a second


def _tenant(tenant: str, other_tasks: int) -> None:
    """A live campaign with `other_tasks` tasks of other event types, one task that never completes
    (COUNTING: count >= 10,000) and one that completes on the first event (COMPLETING)."""
    # Imported here: the package's Metrics must be built after mocked_stack set the functions' environment.
    from marketing.campaigns import service
    from marketing.campaigns.models import CampaignIn, CampaignTaskIn, TaskIn
    from marketing.core.identity import Caller, Role
    from marketing.core.observability import metrics
    from marketing.rewards import service as rewards_service
    from marketing.rewards.models import RewardIn

    admin = Caller(sub="ops", tenant_id=tenant, app_id="bench", roles=frozenset({Role.ADMIN}))
    reward = rewards_service.create_reward(admin, RewardIn(
        name="Points", reward_type="POINTS", content={"amount": 10}, total_stock=None)).reward_id
    campaign = service.create_campaign(admin, CampaignIn(
        name="Bench", start_time="2026-01-01T00:00:00Z", end_time="2099-01-01T00:00:00Z", status="ACTIVE"))
    specs = [(f"OTHER_{i}", 1) for i in range(other_tasks)] + [("COUNTING", 10_000), ("COMPLETING", 1)]
    for event_type, target in specs:
        task = service.create_task(admin, TaskIn(
            name=event_type, task_type="CUSTOM", event_type=event_type, reward_id=reward, period="ONCE",
            condition={"type": "count", "operator": ">=", "value": target}))
        service.link_task(admin, campaign.campaign_id, CampaignTaskIn(task_id=task.task_id))
        metrics.clear_metrics()  # disabled metrics still pile up, and print themselves at 100


def _event(tenant: str, event_type: str, n: int) -> dict:
    return {"version": "0", "id": f"b{n}", "detail-type": "task.triggered", "source": "marketing.campaigns",
            "account": "123456789012", "time": "2026-11-23T16:00:00Z", "region": "us-east-1", "resources": [],
            "detail": {"event_id": f"{event_type}-{n}", "tenant_id": tenant, "app_id": "bench",
                       "occurred_at": "2026-11-23T16:00:00.000Z", "event_type": event_type,
                       "user_id": f"user-{n}", "event_data": {}, "user_attributes": {}}}


def _hot_task() -> list[str]:
    """10,000 users complete one task (count >= 1), each through the engine's own `advance`."""
    from datetime import UTC, datetime

    task = {"task_id": "hot", "task_type": "CUSTOM", "event_type": "visit", "reward_id": "r1", "period": "ONCE",
            "condition": {"type": "count", "operator": ">=", "value": 1}}
    with mocked_stack("bench"), recording() as touches:
        # Imported here: the package's Metrics must be built after mocked_stack set the functions' environment.
        from marketing.campaigns import dal, engine
        from marketing.core.observability import metrics

        for n in range(HOT_COMPLETIONS):
            event = engine.TaskEvent(tenant_id="hot", app_id="bench", event_id=f"e{n}", event_type="visit",
                                     user_id=f"user-{n}", occurred_at=datetime(2026, 11, 23, tzinfo=UTC))
            assert engine.advance(event, task, "c1", f"user-{n}") == "COMPLETED"
            metrics.clear_metrics()  # disabled metrics still pile up, and print themselves at 100
        assert dal.get_stats("hot#A#bench", "hot")["total_completions"] == HOT_COMPLETIONS
    (item, on_item), (partition, on_partition) = touches.hottest()
    # Per completion: before sharding, the task's one stats item (and its one log partition) took every one.
    item_per_completion = touches.items[item] / HOT_COMPLETIONS
    partition_per_completion = touches.partitions[partition] / HOT_COMPLETIONS
    # Transactions cost 2 write units per item: the hottest partition's write units a second at the target rate.
    partition_rate = partition_per_completion * TARGET_RATE * 2
    goal = 1.5 / dal.TASK_SHARDS
    item_verdict = "met" if item_per_completion <= goal else "NOT MET"
    partition_verdict = "met" if partition_rate <= PARTITION_WRITES else "NOT MET"
    return [f"hot task: {HOT_COMPLETIONS:,} completions of one task by as many users, {touches.total():,} writes "
            f"and condition checks ({touches.total() / HOT_COMPLETIONS:.1f} a completion)",
            f"  hottest item {item[0]} / {item[1]}: touched by {item_per_completion:.1%} of completions, "
            f"{on_item:.1%} of all touches (goal <= 1.5/{dal.TASK_SHARDS} = {goal:.0%} of completions: "
            f"{item_verdict})",
            f"  hottest partition key {partition}: touched by {partition_per_completion:.1%} of completions, "
            f"{on_partition:.1%} of all touches, {partition_rate:,.0f} write units a second at {TARGET_RATE:,} "
            f"completions a second (limit {PARTITION_WRITES:,}: {partition_verdict})"]


def run() -> list[str]:
    cases = [("no listening task", "NOBODY", None), ("one task, counted", "COUNTING", "COUNTED"),
             ("one task, completed", "COMPLETING", "COMPLETED")]
    requests_rows, speed_rows = [], []
    with mocked_stack("bench") as stack, counting() as counter:
        # The template's environment asks for INFO logs and metrics: keep the bench's output to its figures.
        os.environ.update({"POWERTOOLS_LOG_LEVEL": "ERROR", "POWERTOOLS_METRICS_DISABLED": "true"})
        engine = Function("TaskTriggerFunction", stack)
        from marketing.core.observability import metrics  # disabled metrics still pile up, then auto-flush

        def trigger(event: dict) -> dict:
            answer = engine(event)
            metrics.clear_metrics()
            return answer

        for others in (1, 10, 100):
            tenant = f"bench-{others}"
            _tenant(tenant, others)
            row: list = [others]
            rates = []
            for _, event_type, expected in cases:
                counter.reset()
                answer = trigger(_event(tenant, event_type, 0))
                outcomes = [o["outcome"] for o in answer["outcomes"]]
                assert outcomes == ([expected] if expected else []), answer
                detail = ", ".join(f"{k.split('.')[1]}×{v}" for k, v in sorted(counter.calls.items())
                                   if k.startswith("dynamodb"))
                row.append(f"{counter.dynamodb()} ({detail})")
                started = time.perf_counter()
                for n in range(1, TIMED_EVENTS + 1):
                    trigger(_event(tenant, event_type, n))
                rates.append(TIMED_EVENTS / (time.perf_counter() - started))
            requests_rows.append(tuple(row))
            speed_rows.append((others, *(f"{r:.0f}/s ({r / rates[0]:.2f}x)" for r in rates)))
    header = ("other tasks", *(label for label, _, _ in cases))
    return ["DynamoDB requests per event (the figure must not move with the number of other tasks)",
            *table(requests_rows, header),
            f"events per second through the handler in-process, {TIMED_EVENTS} events each, ratio against 'no "
            "listening task' in the same run (bound by moto, whose Query reads the whole table and slows as it "
            "grows; the request counts above are what DynamoDB bills)",
            *table(speed_rows, header), *_hot_task()]
