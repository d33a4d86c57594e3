"""Statistics consumer: DynamoDB writes per 1,000 events against a naive consumer measured in the same run,
and events per second through the consumer's handler in-process (on moto, so moto's speed bounds it).

10,000 events over 50 topics with a Zipf-like skew (and Zipf-skewed users, so uniques repeat), delivered in
batches of the template's BatchSize. The naive consumer writes one update per event per metric (plus a
conditional marker per unique metric) and only the all-channel counters, with no exactly-once record: it
does less than ours, which keeps the comparison conservative.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import boto3

import bench.support  # noqa: F401  (sets a safe environment first)
from bench.support import table
from local_stack.template import load
from marketing.stats.metrics import effect_of
from marketing.stats.models import EVENT_ADAPTER
from tests.support import Function, mocked_stack, reset_clients

os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "MarketingEngine")  # as the template sets it

EVENTS, TOPICS, USERS = 10_000, 50, 5_000
WRITES = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}
READS = {"GetItem", "BatchGetItem", "Query", "Scan"}


def make_events(seed: int = 7) -> list[dict]:
    rng = random.Random(seed)
    topic_weights = [1 / (k ** 1.1) for k in range(1, TOPICS + 1)]
    user_weights = [1 / (k ** 0.8) for k in range(1, USERS + 1)]
    topics = rng.choices(range(TOPICS), weights=topic_weights, k=EVENTS)
    users = rng.choices(range(USERS), weights=user_weights, k=EVENTS)
    events = []
    for i in range(EVENTS):
        kind = rng.choices(["activity.visit", "activity.share", "order.paid", "coupon.redeemed", "lottery.entered",
                            "share.visit"], weights=[60, 15, 10, 5, 5, 5])[0]
        payload = {}
        if kind == "order.paid":
            payload = {"order_id": f"o{i}", "quantity": rng.randint(1, 3), "coupons": rng.randint(0, 2),
                       "amount": rng.randint(100, 10_000), "member": rng.random() < 0.3,
                       "via_share": rng.random() < 0.2, "flash_sale": rng.random() < 0.1}
        elif kind == "coupon.redeemed":
            payload = {"redemption_id": f"r{i}", "brand_id": f"b{rng.randrange(20)}", "discount_amount": 500,
                       "redeemed_amount": rng.randint(1000, 5000), "member": rng.random() < 0.3}
        event = {"event_id": f"e{i}", "event_type": kind, "topic_type": "activity", "topic_id": f"a{topics[i]}",
                 "wu_id": f"u{users[i]}", "channel_type": rng.choice(["wx", "app", "h5"])}
        if payload:
            event["payload"] = payload
        events.append(event)
    return events


def sqs_batches(events: list[dict], size: int) -> list[dict]:
    bodies = [json.dumps({"tenant_id": "bench", "app_id": "app1", "event": e}) for e in events]
    return [{"Records": [{"messageId": f"m{n}", "receiptHandle": "x", "body": body, "attributes": {},
                          "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
                          "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:bench-StatsQueue",
                          "awsRegion": "us-east-1"}
                         for n, body in enumerate(bodies[start:start + size], start)]}
            for start in range(0, len(bodies), size)]


class WriteCounter:
    """Write requests, item writes (a transaction's actions each) and updates per item, from the API params."""

    def __init__(self) -> None:
        self.requests = 0
        self.reads = 0
        self.items = 0
        self.transactional_items = 0
        self.updates_per_item: Counter[tuple] = Counter()

    def __call__(self, params, model, **_) -> None:
        self.reads += model.name in READS
        if model.name not in WRITES:
            return
        self.requests += 1
        if model.name == "TransactWriteItems":
            actions = params["TransactItems"]
            self.items += len(actions)
            self.transactional_items += len(actions)
            for action in actions:
                if "Update" in action and "JOURNAL" not in str(action["Update"]["Key"]["sk"]):  # counters only
                    key = action["Update"]["Key"]
                    self.updates_per_item[(str(key["pk"]), str(key["sk"]))] += 1
        else:
            self.items += 1
            if model.name == "UpdateItem":
                self.updates_per_item[(str(params["Key"]["pk"]), str(params["Key"]["sk"]))] += 1

    @property
    def write_units(self) -> int:
        """Estimated WCU for items under 1 KB: a transactional write costs two."""
        return self.items + self.transactional_items


@contextmanager
def counting_writes() -> Iterator[WriteCounter]:
    """Count the writes of clients built inside the block: a client copies the session's hooks when built,
    so cached clients are dropped on the way in and out."""
    counter = WriteCounter()
    boto3.DEFAULT_SESSION.events.register("before-parameter-build.dynamodb", counter)
    reset_clients()
    try:
        yield counter
    finally:
        boto3.DEFAULT_SESSION.events.unregister("before-parameter-build.dynamodb", counter)
        reset_clients()


def naive_consumer(events: list[dict], table) -> None:
    """One update per event per metric; a conditional marker decides each unique metric."""
    for raw in events:
        event = EVENT_ADAPTER.validate_python(raw)
        effect = effect_of(event)
        pk = f"T#bench#NAIVE#{event.topic_type}#{event.topic_id}"
        for metric, amount in effect.counts.items():
            table.update_item(Key={"pk": pk, "sk": event.day}, UpdateExpression="ADD #m :v",
                              ExpressionAttributeNames={"#m": metric}, ExpressionAttributeValues={":v": amount})
        for metric, subject in effect.uniques:
            try:
                table.put_item(Item={"pk": f"{pk}#{event.day}#{subject}", "sk": metric},
                               ConditionExpression="attribute_not_exists(pk)")
            except table.meta.client.exceptions.ConditionalCheckFailedException:
                continue
            table.update_item(Key={"pk": pk, "sk": event.day}, UpdateExpression="ADD #m :one",
                              ExpressionAttributeNames={"#m": metric}, ExpressionAttributeValues={":one": 1})


def totals_of(table, pk_prefix: str, sk_prefix: str = "") -> Counter:
    found: Counter = Counter()
    for item in _scan(table):
        if item["pk"].startswith(pk_prefix) and item["sk"].startswith(sk_prefix):
            found.update({k: int(v) for k, v in item.items() if k not in ("pk", "sk", "ttl")})
    return found


def _scan(table):
    kwargs: dict = {}
    while True:
        page = table.scan(**kwargs)
        yield from page["Items"]
        if "LastEvaluatedKey" not in page:
            return
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def run() -> list[str]:
    events = make_events()
    size = int(load()["Resources"]["StatsConsumerFunction"]["Properties"]["Events"]["StatsQueue"]["Properties"]
               ["BatchSize"])
    batches = sqs_batches(events, size)
    rows, lines = [], []
    with mocked_stack("bench") as stack:
        consumer = Function("StatsConsumerFunction", stack)
        ddb = boto3.resource("dynamodb").Table(stack.ref("Table"))
        boto3.setup_default_session()
        with counting_writes() as ours:
            started = time.perf_counter()
            for batch in batches:
                answer = consumer(batch)
                assert answer == {"batchItemFailures": []}, answer
            ours_seconds = time.perf_counter() - started

        counted_once = totals_of(ddb, "T#bench#A#app1#STATS#", "C#")
        with counting_writes() as again:
            for batch in batches:  # every batch delivered a second time: nothing may move
                consumer(batch)
        assert totals_of(ddb, "T#bench#A#app1#STATS#", "C#") == counted_once, "a redelivery moved a counter"

        with counting_writes() as naive:
            started = time.perf_counter()
            naive_consumer(events, boto3.resource("dynamodb").Table(stack.ref("Table")))
            naive_seconds = time.perf_counter() - started

        ours_totals = totals_of(ddb, "T#bench#A#app1#STATS#", "C#*#")
        naive_totals = totals_of(ddb, "T#bench#NAIVE#")
        assert ours_totals == naive_totals, "the two consumers disagree"

    per_k = 1000 / EVENTS
    for label, counter, seconds in (("naive: update per event per metric", naive, naive_seconds),
                                    ("ours: claim, then one update per counter item per batch", ours, ours_seconds)):
        rows.append((label, f"{counter.requests * per_k:.0f}", f"{counter.items * per_k:.0f}",
                     f"{counter.write_units * per_k:.0f}", f"{counter.reads * per_k:.0f}",
                     f"{max(counter.updates_per_item.values()) * per_k:.1f}", f"{EVENTS / seconds:,.0f}"))
    lines += table(rows, ("consumer", "write requests/1k events", "item writes/1k", "WCU/1k (est.)",
                          "read requests/1k", "updates of the hottest counter item/1k", "events/s (moto)"))
    lines.append(f"write requests: {naive.requests / ours.requests:.1f}x fewer than naive "
                 f"({ours.requests} vs {naive.requests} for {EVENTS:,} events over {TOPICS} topics, "
                 f"batches of {size}); hottest counter item: "
                 f"{max(naive.updates_per_item.values()) / max(ours.updates_per_item.values()):.1f}x fewer updates")
    lines.append(f"item writes {naive.items / ours.items:.2f}x fewer; WCU {naive.write_units / ours.write_units:.2f}x "
                 "(transactions cost 2 WCU per item: the price of exactly once)")
    lines.append(f"every batch delivered again: {again.requests} write requests, totals unchanged; "
                 f"totals equal to the naive consumer's ({sum(ours_totals.values()):,} counted units)")
    return lines
