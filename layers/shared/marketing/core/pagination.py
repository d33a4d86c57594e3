"""Opaque page tokens: base64 of `LastEvaluatedKey`, checked against the query it is given to.

A token that does not decode, whose partition is not the one being queried (another tenant's, say), whose
sort key lies outside the query's prefix, or whose attributes are not exactly the key of the table or index
queried, is a 400: a crafted token can never page through data outside the caller's query, and never
reaches DynamoDB (which refuses a start key of another shape or outside the query: a 500 for us).
"""

from __future__ import annotations

import base64
import json
from typing import Any

from boto3.dynamodb.conditions import Key

from marketing.core.dynamo import INDEX_KEYS, TABLE_KEY
from marketing.core.errors import BadRequest

MAX_LIMIT = 100


def encode(last_key: dict[str, Any] | None) -> str | None:
    if not last_key:
        return None
    raw = json.dumps(last_key, separators=(",", ":"), sort_keys=True, default=str).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(token: str | None, *, partition: dict[str, str], key_names: tuple[str, ...] | None = None,
           sort_prefix: tuple[str, str] | None = None) -> dict[str, Any] | None:
    """The `ExclusiveStartKey` for `token`, which must name exactly the `partition` attributes given, carry
    exactly the attributes `key_names` (when given) and a sort key starting with `sort_prefix`'s prefix."""
    if not token:
        return None
    try:
        padded = token + "=" * (-len(token) % 4)
        key = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, TypeError) as exc:
        raise BadRequest("next_token is not a valid page token", details=[{"field": "next_token"}]) from exc
    if not isinstance(key, dict) or any(key.get(k) != v for k, v in partition.items()):
        raise BadRequest("next_token does not belong to this query", details=[{"field": "next_token"}])
    if not all(isinstance(v, str) for v in key.values()):
        raise BadRequest("next_token is not a valid page token", details=[{"field": "next_token"}])
    if (key_names is not None and set(key) != set(key_names)) or \
            (sort_prefix and not key.get(sort_prefix[0], "").startswith(sort_prefix[1])):
        raise BadRequest("next_token does not belong to this query", details=[{"field": "next_token"}])
    return key


def query_page(
    table,
    *,
    partition: dict[str, str],
    limit: int,
    next_token: str | None,
    sort_prefix: tuple[str, str] | None = None,
    index: str | None = None,
    newest_first: bool = False,
    filter_expression: Any = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of a Query: (items, next_token). `partition` is the key condition's equality
    (`{"pk": "T#t1#..."}`), also used to check the token; `sort_prefix` is `(sort attribute, prefix)`;
    `filter_expression` (boto3 conditions) narrows a page after the read, so a page may hold fewer items."""
    (attr, value), = partition.items()
    condition = Key(attr).eq(value)
    if sort_prefix:
        condition = condition & Key(sort_prefix[0]).begins_with(sort_prefix[1])
    kwargs: dict[str, Any] = {
        "KeyConditionExpression": condition,
        "Limit": max(1, min(limit, MAX_LIMIT)),
        "ScanIndexForward": not newest_first,
    }
    if index:
        kwargs["IndexName"] = index
    if filter_expression is not None:
        kwargs["FilterExpression"] = filter_expression
    # An index query's LastEvaluatedKey carries both the table's key and the index's.
    start = decode(next_token, partition=partition, sort_prefix=sort_prefix,
                   key_names=TABLE_KEY + INDEX_KEYS[index] if index else TABLE_KEY)
    if start:
        kwargs["ExclusiveStartKey"] = start
    answer = table.query(**kwargs)
    return answer.get("Items", []), encode(answer.get("LastEvaluatedKey"))
