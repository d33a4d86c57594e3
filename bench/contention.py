"""Contention: which items and partition keys a flash sale's writes and condition checks land on.

The local stack serializes requests, so it never shows what limits DynamoDB in production: transactions on one
item conflict, and one partition key takes about 1,000 write units a second (a transactional write costs 2).
This suite runs a flash sale through the real service code on template.yaml's table in moto (in-process,
one request at a time), records every item each request writes or condition-checks (a botocore event hook on
the wire body, tests.support.recording_touches), and prints the share of all touches on the hottest item and
the hottest partition key (an index partition counts as the key it is written under), and what that key would
take at the documented target rate (docs/data-model.md, "Hot keys and limits").
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import time
from collections import Counter
from datetime import timedelta

import bench.support  # noqa: F401  (sets a safe environment first)
from bench.support import table

os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "bench")  # the service's metrics need one, even switched off
from marketing.core import clock  # noqa: E402
from marketing.core.identity import Caller, Role
from marketing.rewards import dal, service
from marketing.rewards.models import RewardIn
from tests.support import mocked_stack, recording_touches

# The shares are per reservation, the same for any count: 1,000 keeps the suite near a minute on moto (10,000 takes
# ten; BENCH_FLASH_SALE=10000 runs it).
RESERVATIONS = int(os.environ.get("BENCH_FLASH_SALE", "1000"))
SHARDS = 16
TARGET_PER_SECOND = 10_000  # reservations of one reward (docs/data-model.md)
PARTITION_WRITE_UNITS = 1_000
ADMIN = Caller(sub="ops", tenant_id="bench", app_id="app1", roles=frozenset({Role.ADMIN}))
SERVICE = Caller(sub="campaigns", tenant_id="bench", app_id="app1", roles=frozenset({Role.SERVICE}))


def _flash_sale() -> tuple[list[tuple[str, tuple, dict]], dict[tuple, dict], float]:
    """Reserve RESERVATIONS units of one reward (one per user, its per-user limit 1) over SHARDS shards;
    confirm every other one and let the sweeper expire the rest. Answers the touches (step, item key, index
    partitions written), the index partitions of every item left in the table, and the seconds it took."""
    touches: list[tuple[str, tuple, dict]] = []
    started = time.perf_counter()
    with mocked_stack("bench"):
        reward = service.create_reward(ADMIN, RewardIn(
            name="flash", reward_type="COUPON", content={"discount_type": "AMOUNT", "discount_value": 100},
            total_stock=RESERVATIONS, per_user_limit=1, shards=SHARDS))
        with recording_touches(dal.dynamo.client()) as recorded:
            for n in range(RESERVATIONS):
                service.reserve(SERVICE, reward_id=reward.reward_id, user_id=f"u{n}", quantity=1, expire_minutes=60,
                                reservation_id=f"r{n}")
            touches += [("reserve", key, indexed) for _, (key, indexed) in recorded]
            recorded.clear()
            for n in range(0, RESERVATIONS, 2):
                service.confirm(SERVICE, f"r{n}")
            touches += [("confirm", key, indexed) for _, (key, indexed) in recorded]
            recorded.clear()
            later = clock.now() + timedelta(minutes=61)
            real = service.now_iso
            service.now_iso = lambda: clock.iso(later)  # the sweeper runs after every reservation's expiry
            try:
                expired = service.sweep(rounds=1000)
            finally:
                service.now_iso = real
            touches += [("sweeper", key, indexed) for _, (key, indexed) in recorded]
        assert expired == RESERVATIONS // 2, expired
        # Updates do not name the index partitions an item is written under: the items left say.
        indexed = {}
        for page in dal.dynamo.client().get_paginator("scan").paginate(TableName=os.environ["TABLE_NAME"]):
            for item in page["Items"]:
                indexed[(item["pk"], item["sk"])] = {
                    name: value for name, value in item.items() if name.endswith("pk") and name != "pk"}
        stock = service.get_reward(ADMIN, reward.reward_id).stock
        assert (stock.available, stock.reserved, stock.issued) == (RESERVATIONS // 2, 0, RESERVATIONS // 2), stock
    return touches, indexed, time.perf_counter() - started


def _pattern(key: str) -> str:
    """A key with its ids elided, to name the kind of item."""
    parts = key.split("#")
    return "#".join(p if p.isupper() or p.isdigit() and len(p) < 3 else "…" for p in parts)


def run() -> list[str]:
    with contextlib.redirect_stdout(io.StringIO()):  # the service's metrics (EMF lines) are not the figures
        touches, indexed, seconds = _flash_sale()
    items = Counter(key for _, key, _ in touches)
    partitions: Counter[str] = Counter()
    units: Counter[str] = Counter()  # write units: 2 a transactional item write, 1 its index write
    for _, key, written in touches:
        partitions[key[0]] += 1
        units[key[0]] += 2
        for partition in {**indexed.get(key, {}), **written}.values():
            partitions[partition] += 1
            units[partition] += 1
    total = sum(items.values())
    steps = Counter(step for step, _, _ in touches)
    (hot_item, item_n), = items.most_common(1)
    (hot_key, key_n), = partitions.most_common(1)
    goal = 1.5 / SHARDS
    # At the target rate, what the busiest key takes: its write units per reservation (every base-table touch
    # here is part of a transaction), times the rate.
    (busiest, busiest_units), = units.most_common(1)
    per_second = busiest_units / RESERVATIONS * TARGET_PER_SECOND
    needed = math.ceil(per_second * SHARDS / PARTITION_WRITE_UNITS)
    lines = [f"flash sale: {RESERVATIONS:,} reservations of one reward over {SHARDS} shards (per-user limit 1), "
             f"half confirmed, half expired by the sweeper; real service code on moto in {seconds:.0f}s",
             *table([(step, f"{n:,}", f"{n / (RESERVATIONS if step == 'reserve' else RESERVATIONS / 2):.1f}")
                     for step, n in steps.items()], ("step", "items touched", "per call")),
             "",
             f"touches (writes and condition checks): {total:,}",
             f"hottest item: {_pattern(hot_item[0])} / {hot_item[1]}: {item_n:,} = {item_n / total:.2%} of touches "
             f"(goal <= 1.5/{SHARDS} = {goal:.2%}: {'met' if item_n / total <= goal else 'NOT met'}); "
             f"the reward item: {sum(n for key, n in items.items() if key[1] == 'REWARD'):,}",
             f"hottest partition key (index partitions included): {_pattern(hot_key)}: {key_n:,} = "
             f"{key_n / total:.2%} of touches",
             f"busiest key in write units, {_pattern(busiest)}: at {TARGET_PER_SECOND:,} reservations/s "
             f"~{per_second:,.0f} write units/s "
             f"(limit {PARTITION_WRITE_UNITS:,}/s per partition key): "
             + ("within" if per_second <= PARTITION_WRITE_UNITS else
                f"over; {needed} shards would keep each under the limit"),
             *table([(_pattern(k), f"{n:,}", f"{n / total:.2%}") for k, n in partitions.most_common(5)],
                    ("top partition keys", "touches", "share"))]
    return lines
