"""Shared benchmark helpers: DynamoDB request counting with a botocore event hook, and table output."""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import boto3

# Benchmarks run against moto in-process: never real AWS.
os.environ.update({"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1",
                   "POWERTOOLS_TRACE_DISABLED": "true", "POWERTOOLS_METRICS_DISABLED": "true",
                   "POWERTOOLS_LOG_LEVEL": "ERROR"})
os.environ.pop("AWS_ENDPOINT_URL", None)


class RequestCounter:
    """Counts AWS requests per service and operation made by clients of boto3's default session."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    def __call__(self, model, **_) -> None:
        self.calls[f"{model.service_model.service_name}.{model.name}"] += 1

    def dynamodb(self) -> int:
        return sum(n for name, n in self.calls.items() if name.startswith("dynamodb."))

    def reset(self) -> None:
        self.calls.clear()


@contextmanager
def hooked(event: str, handler: Callable) -> Iterator[None]:
    """`handler` called on botocore's `event` by every client of boto3's default session built inside the
    block (cached clients are dropped first: a client copies the session's hooks when it is built)."""
    from tests.support import reset_clients

    session = boto3.DEFAULT_SESSION or boto3.setup_default_session() or boto3.DEFAULT_SESSION
    session.events.register(event, handler)
    reset_clients()
    try:
        yield
    finally:
        session.events.unregister(event, handler)


@contextmanager
def counting() -> Iterator[RequestCounter]:
    """Count every request of clients built inside the block."""
    counter = RequestCounter()
    with hooked("before-call", counter):
        yield counter


@dataclass
class Contention:
    """Touches per item (pk, sk) and per partition key (table `pk`, or `index:partition` for an index) of the
    writes and condition checks a run sends (tests.support.touched_items reads them off the wire body)."""

    items: Counter = field(default_factory=Counter)
    partitions: Counter = field(default_factory=Counter)

    def __call__(self, model, params, **_) -> None:
        from tests.support import touched_items

        for (pk, sk), indexed in touched_items(model.name, json.loads(params.get("body") or b"{}")):
            self.items[(pk, sk)] += 1
            self.partitions[pk] += 1
            for name, value in indexed.items():  # an index write lands on the index's partition too
                self.partitions[f"{name.removesuffix('pk')}:{value}"] += 1

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


def table(rows: list[tuple], header: tuple) -> list[str]:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return [fmt.format(*header), *(fmt.format(*map(str, r)) for r in rows)]
