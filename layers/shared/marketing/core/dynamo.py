"""The one door to DynamoDB. Only data-access modules (`<capability>/dal.py`) import this.

The boto3 resource is built lazily, once per container: a client built at import time would be made
before tests or the local stack configured their endpoint.
"""

from __future__ import annotations

from decimal import Decimal
from functools import cache
from typing import Any

import boto3
from botocore.exceptions import ClientError

from marketing.core import config


@cache
def resource():
    return boto3.resource("dynamodb")


def table():
    return resource().Table(config.table_name())


def client():
    """The resource's client: it takes and returns plain Python values, transactions included."""
    return resource().meta.client


def plain(value: Any) -> Any:
    """Decimal → int (or float), recursively: nothing above the data-access layer sees a Decimal."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, set, tuple)):
        return [plain(v) for v in value]
    return value


def error_code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "")


def is_condition_failure(exc: ClientError) -> bool:
    return error_code(exc) == "ConditionalCheckFailedException"


def cancellation_reasons(exc: ClientError) -> list[str]:
    """One code per action of a cancelled transaction, in order ('None' where the action was fine)."""
    if error_code(exc) != "TransactionCanceledException":
        raise exc
    return [r.get("Code", "None") for r in exc.response.get("CancellationReasons", [])]


def transact_write(actions: list[dict[str, Any]], *, token: str | None = None) -> None:
    """`TransactWriteItems` on our table: each action is `{"Put"|"Update"|"Delete"|"ConditionCheck": {...}}`
    without `TableName`. `token` makes a retried transaction idempotent for 10 minutes."""
    name = config.table_name()
    items = [{kind: {"TableName": name, **body}} for action in actions for kind, body in action.items()]
    kwargs: dict[str, Any] = {"TransactItems": items}
    if token:
        kwargs["ClientRequestToken"] = token[:36]
    client().transact_write_items(**kwargs)
