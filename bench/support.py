"""Shared benchmark helpers: DynamoDB request counting with a botocore event hook, and table output."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager

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


def table(rows: list[tuple], header: tuple) -> list[str]:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return [fmt.format(*header), *(fmt.format(*map(str, r)) for r in rows)]
