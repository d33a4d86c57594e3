"""Contention: which items and partition keys the writes and condition checks of a run land on.

The local stack and moto serialize every request, so they never show what limits DynamoDB: concurrent
transactions on one item conflict, and one partition key takes about 1,000 writes a second. A botocore hook
records, per request, every item written or condition-checked (TransactWriteItems, UpdateItem, PutItem,
DeleteItem, BatchWriteItem) and the partition keys they land on, the index partitions a put item joins
included; `hottest` then says which share of all touches the single hottest item and partition key took.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from bench.support import hooked
from marketing.core.dynamo import INDEX_KEYS, TABLE_KEY

_PK, _SK = TABLE_KEY


def _value(typed: dict) -> str:
    (_, value), = typed.items()
    return str(value)


def _touches(operation: str, body: dict) -> Iterator[tuple[dict, bool]]:
    """(key or item, whether it is a whole item put) of every item a write request touches."""
    if operation == "TransactWriteItems":
        for action in body["TransactItems"]:
            (kind, detail), = action.items()
            yield (detail["Item"], True) if kind == "Put" else (detail["Key"], False)
    elif operation == "PutItem":
        yield body["Item"], True
    elif operation in ("UpdateItem", "DeleteItem"):
        yield body["Key"], False
    elif operation == "BatchWriteItem":
        for requests in body["RequestItems"].values():
            for request in requests:
                if "PutRequest" in request:
                    yield request["PutRequest"]["Item"], True
                else:
                    yield request["DeleteRequest"]["Key"], False


@dataclass
class Contention:
    """Touches per item (pk, sk) and per partition key (table `pk`, or `index:partition` for an index)."""

    items: Counter = field(default_factory=Counter)
    partitions: Counter = field(default_factory=Counter)

    def __call__(self, model, params, **_) -> None:
        if model.name not in ("TransactWriteItems", "UpdateItem", "PutItem", "DeleteItem", "BatchWriteItem"):
            return
        for key, whole in _touches(model.name, json.loads(params["body"])):
            pk = _value(key[_PK])
            self.items[(pk, _value(key[_SK]))] += 1
            self.partitions[pk] += 1
            if whole:  # an index write lands on the index's partition too
                for index, (index_pk, _) in INDEX_KEYS.items():
                    if index_pk in key:
                        self.partitions[f"{index}:{_value(key[index_pk])}"] += 1

    def reset(self) -> None:
        self.items.clear()
        self.partitions.clear()

    def total(self) -> int:
        return sum(self.items.values())

    def hottest(self) -> tuple[tuple[tuple[str, str], float], tuple[str, float]]:
        """((item, share of all item touches), (partition key, share of all touches))."""
        (item, on_item), = self.items.most_common(1)
        (partition, on_partition), = self.partitions.most_common(1)
        return (item, on_item / self.total()), (partition, on_partition / self.total())


@contextmanager
def recording() -> Iterator[Contention]:
    """Record the writes of every DynamoDB client of boto3's default session built inside the block."""
    recorder = Contention()
    with hooked("before-call.dynamodb", recorder):
        yield recorder
