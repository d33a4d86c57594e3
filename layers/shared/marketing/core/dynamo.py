"""The one door to DynamoDB. Only data-access modules (`<capability>/dal.py`, `stats/journal.py`) import this.

The boto3 resource is built lazily, once per container: a client built at import time would be made
before tests or the local stack configured their endpoint.
"""

from __future__ import annotations

import random
import time
import zlib
from decimal import Decimal
from functools import cache
from typing import Any

from botocore.exceptions import ClientError

from marketing.core import aws, config


@cache
def resource():
    return aws.resource("dynamodb")


def table():
    # boto3 builds a Table resource's class anew on every `.Table()` (milliseconds per request): one per name,
    # built again when the resource changes (tests and the local stack reset it).
    client, name = resource().meta.client, config.table_name()
    cached = _tables.get(name)
    if cached is None or cached.meta.client is not client:
        cached = _tables[name] = resource().Table(name)
    return cached


_tables: dict[str, Any] = {}


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


def shard_of(text: str, shards: int) -> int:
    """Which of `shards` write shards `text` (a user, an event, a completion) lands on: stable across
    processes (unlike `hash()`), spread evenly."""
    return zlib.crc32(text.encode()) % shards


def query_all(**kwargs: Any) -> list[dict[str, Any]]:
    """Every item a Query finds (`kwargs` as for `Table.query`), page after page, as stored."""
    items: list[dict[str, Any]] = []
    while True:
        answer = table().query(**kwargs)
        items += answer.get("Items", [])
        if "LastEvaluatedKey" not in answer:
            return items
        kwargs["ExclusiveStartKey"] = answer["LastEvaluatedKey"]


def batch_get(keys: list[dict[str, str]], *, consistent: bool = False) -> list[dict[str, Any]]:
    """Every item of `keys` that exists, as stored (BatchGetItem, 100 keys a request; unprocessed keys are
    asked again after a short, growing pause)."""
    found: list[dict[str, Any]] = []
    name = config.table_name()
    for start in range(0, len(keys), 100):
        pending: dict = {name: {"Keys": keys[start:start + 100], "ConsistentRead": consistent}}
        for attempt in range(64):
            answer = client().batch_get_item(RequestItems=pending)
            found.extend(answer["Responses"].get(name, []))
            pending = answer.get("UnprocessedKeys") or {}
            if not pending:
                break
            time.sleep(random.uniform(0, min(1.0, 0.01 * 2**attempt)))
        else:
            raise RuntimeError("DynamoDB left keys unprocessed for too long")  # never a silently partial answer
    return found


# Key attributes of the table and of its indexes, as template.yaml defines them (tests/unit/test_template.py
# checks they match).
TABLE_KEY = ("pk", "sk")
INDEX_KEYS = {"gsi1": ("gsi1pk", "gsi1sk"), "gsi2": ("gsi2pk", "gsi2sk")}
TABLE_KEYS = frozenset(TABLE_KEY).union(*INDEX_KEYS.values())


def entity(item: dict[str, Any] | None) -> dict[str, Any] | None:
    """An item as the domain sees it: plain values, without the table's key attributes."""
    if item is None:
        return None
    return {k: v for k, v in plain(item).items() if k not in TABLE_KEYS}


def update_expression(fields: dict[str, Any], *, extra_set: tuple[str, ...] = (),
                      extra: str = "") -> tuple[str, dict[str, str], dict[str, Any]]:
    """`SET #f0 = :f0, ... REMOVE #f1` for a partial update: a None value removes the attribute.
    `extra_set` adds raw SET assignments, `extra` a raw clause (`ADD version :one`)."""
    names, values, sets, removes = {}, {}, list(extra_set), []
    for i, (name, value) in enumerate(fields.items()):
        names[f"#f{i}"] = name
        if value is None:
            removes.append(f"#f{i}")
        else:
            values[f":f{i}"] = value
            sets.append(f"#f{i} = :f{i}")
    expression = ("SET " + ", ".join(sets)) if sets else ""
    expression += f" {extra}" if extra else ""
    if removes:
        expression += " REMOVE " + ", ".join(removes)
    return expression.strip(), names, values


def error_code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "")


def is_condition_failure(exc: ClientError) -> bool:
    return error_code(exc) == "ConditionalCheckFailedException"


def cancellation_reasons(exc: ClientError) -> list[str]:
    """One code per action of a cancelled transaction, in order ('None' where the action was fine)."""
    if error_code(exc) != "TransactionCanceledException":
        raise exc
    return [r.get("Code", "None") for r in exc.response.get("CancellationReasons", [])]


# Cancellation reasons that say nothing about our conditions: another writer or the service was busy.
_TRANSIENT = {"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded", "RequestLimitExceeded"}
TRANSACT_ATTEMPTS = 5
MAX_TRANSACT_ACTIONS = 100  # TransactWriteItems' limit


def is_transient(exc: ClientError) -> bool:
    """Refused only because another writer or the service was busy: worth trying again later."""
    if error_code(exc) == "TransactionInProgressException":
        return True
    if error_code(exc) != "TransactionCanceledException":
        return False
    reasons = set(cancellation_reasons(exc))
    return bool(reasons & _TRANSIENT) and reasons <= _TRANSIENT | {"None"}


def transact_write(actions: list[dict[str, Any]], *, token: str | None = None) -> None:
    """`TransactWriteItems` on our table: each action is `{"Put"|"Update"|"Delete"|"ConditionCheck": {...}}`
    without `TableName`. `token` makes a retried transaction idempotent for 10 minutes. A cancellation caused
    only by conflicts or throttling is retried with jittered backoff; a failed condition is raised at once."""
    name = config.table_name()
    items = [{kind: {"TableName": name, **body}} for action in actions for kind, body in action.items()]
    kwargs: dict[str, Any] = {"TransactItems": items}
    if token:
        kwargs["ClientRequestToken"] = token[:36]
    for attempt in range(TRANSACT_ATTEMPTS):
        try:
            client().transact_write_items(**kwargs)
            return
        except ClientError as exc:
            if attempt == TRANSACT_ATTEMPTS - 1 or not is_transient(exc):
                raise
            time.sleep(random.uniform(0, 0.01 * 2**attempt))
