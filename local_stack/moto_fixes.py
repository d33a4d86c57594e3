"""Three fixes for moto 5.2, applied wherever moto runs here: by `local_stack.aws` (the embedded AWS) and
`local_stack.provision` (the tests' and benches' in-process moto), not by the containers, which never run moto.

EventBridge: events delivered to SQS targets lack `account` (see `_EVENT_TEMPLATE_WITH_ACCOUNT`).

DynamoDB transactions: moto 5.2 backs up a transaction by deep-copying the whole table once per action, so a 100-action
transaction copies the table 100 times: time grows with the table and a few thousand items make every
transaction take seconds. Here a transaction backs up only the items it touches and restores them if it is
cancelled: the same all-or-nothing outcome, at a cost independent of the table's size. moto also writes the
actions it applied before finding a failed condition to the table's stream; a cancelled transaction's stream
records are dropped here, as DynamoDB never streams a cancelled transaction (the outbox relies on it).

DynamoDB queries: moto 5.2 lists and sorts every item of the table for each query, to find one partition's.
Here a query on the table's key sees only its partition's items, and an index query the table's items
unsorted (it sorts what matches itself): the same answers, without sorting the whole table per query
(sharded listings and the sweeper send many queries; a long local stack session holds many items).
"""

from __future__ import annotations

import copy
from typing import Any

from moto.dynamodb import models
from moto.dynamodb.models import DynamoDBBackend, DynamoType
from moto.dynamodb.models.table import Table
from moto.events.utils import EventTemplateParser

_original = DynamoDBBackend.transact_write_items


class _CopyWithoutTableBackup:
    """The `copy` module as moto's DynamoDB backend sees it, except that copying a whole table is skipped."""

    def __getattr__(self, name: str) -> Any:
        return getattr(copy, name)

    @staticmethod
    def deepcopy(value: Any, memo: Any = None) -> Any:
        return value if isinstance(value, Table) else copy.deepcopy(value, memo)


def _key_values(table: Table, op: dict) -> tuple[DynamoType, DynamoType | None]:
    attrs = op.get("Key") or op["Item"]
    range_attr = table.range_key_attr
    return DynamoType(attrs[table.hash_key_attr]), DynamoType(attrs[range_attr]) if range_attr else None


def transact_write_items(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
    saved = []
    for action in transact_items:
        op = next(iter(action.values()))
        if op.get("TableName") not in self.tables:
            continue  # moto's own checks answer for a missing table
        table = self.tables[op["TableName"]]
        try:
            hash_key, range_key = _key_values(table, op)
        except (KeyError, TypeError):
            continue  # a malformed key: moto refuses the transaction before writing anything
        saved.append((table, hash_key, range_key, copy.deepcopy(table.get_item(hash_key, range_key))))
    streams = {id(t): (t.stream_shard, len(t.stream_shard.items)) for t, *_ in saved if t.stream_shard is not None}
    try:
        _original(self, transact_items)
    except Exception:
        for table, hash_key, range_key, before in reversed(saved):
            if table.get_item(hash_key, range_key) is not None:
                table.delete_item(hash_key, range_key)
            if before is not None:
                table.put_item(before.to_json()["Attributes"])
        for shard, length in streams.values():  # a cancelled transaction leaves nothing in the stream
            del shard.items[length:]
        raise


_original_query = Table.query


class _QueryView:
    """A table as moto's query sees it, with `all_items()` the items given. A view, not a change to the table:
    concurrent queries (in-process moto in threaded tests) never see each other's."""

    def __init__(self, table: Table, items: list) -> None:
        self._table, self._items = table, items

    def all_items(self) -> list:
        return self._items

    def __getattr__(self, name: str) -> Any:
        return getattr(self._table, name)


def query(self: Table, hash_key: DynamoType | None, *args: Any, **kwargs: Any) -> Any:
    index_name = args[6] if len(args) > 6 else kwargs.get("index_name")
    if self.range_key_attr is None:
        return _original_query(self, hash_key, *args, **kwargs)
    if index_name:
        items = [item for partition in self.items.values() for item in partition.values()]
    elif hash_key is not None:
        items = list(self.items.get(hash_key, {}).values())  # .get: never adds the key to moto's defaultdict
    else:
        return _original_query(self, hash_key, *args, **kwargs)
    return _original_query(_QueryView(self, items), hash_key, *args, **kwargs)


# moto's default input template for EventBridge targets drops `account`, which AWS always sends (and which
# Powertools' EventBridgeModel requires).
_EVENT_TEMPLATE_WITH_ACCOUNT = ('{"id": "<id>", "time": <time>, "version": "0", "detail-type": "<detail-type>", '
                                '"source": "<source>", "account": "<account>", "region": "<region>", '
                                '"resources": <resources>, "detail": <detail>}')


def apply() -> None:
    EventTemplateParser.DEFAULT_EVENT_INPUT_TEMPLATE = _EVENT_TEMPLATE_WITH_ACCOUNT
    if DynamoDBBackend.transact_write_items is not transact_write_items:
        models.copy = _CopyWithoutTableBackup()  # type: ignore[assignment]
        DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]
        Table.query = query  # type: ignore[method-assign]
