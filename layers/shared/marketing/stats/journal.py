"""The counts a batch owes its counters, written down before they are applied (DynamoDB access).

Claiming events (their records, new unique markers and running levels, in `dal`) writes, in the same
transaction, one journal item with the deltas those events cause, per counter item:

    journal   pk T#{s}#STATSJ#{id}   sk JOURNAL   deltas {"{counter pk}|{counter sk}": {metric: amount}}   ttl

Applying then updates each counter item ONCE for every journal of the batch: one `ADD` of the summed deltas,
in the same transaction that removes those entries from their journals, each removal guarded by
`attribute_exists`. An entry is thus applied exactly once, whoever applies it and however often. A journal
left with entries (a crash, a timeout, a conflict) is finished by whoever meets one of its events again: a
redelivered event finds its record, and the record names its journal.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field

from botocore.exceptions import ClientError

from marketing.core import dynamo
from marketing.core.observability import logger

MAX_ACTIONS = dynamo.MAX_TRANSACT_ACTIONS
_ROUNDS = 6  # rounds of re-reading journals someone else applied part of

CounterKey = tuple[str, str]
Deltas = dict[CounterKey, dict[str, int]]  # counter item → metric → amount


def new_key(scope: str) -> str:
    return f"T#{scope}#STATSJ#{uuid.uuid4().hex}"


def _entry(counter: CounterKey) -> str:
    return f"{counter[0]}|{counter[1]}"


def _counter(entry: str) -> CounterKey:
    pk, sk = entry.split("|", 1)
    return pk, sk


def put_action(journal: str, deltas: Deltas, ttl: int) -> dict:
    """The journal's put, for the transaction that claims its events."""
    return {"Put": {"Item": {"pk": journal, "sk": "JOURNAL", "ttl": ttl,
                             "deltas": {_entry(c): metrics for c, metrics in deltas.items()}}}}


def read(journals: set[str]) -> dict[str, Deltas]:
    """The entries not applied yet of each journal found, empty when all are (consistent: a journal is read
    right after a transaction changed it)."""
    items = dynamo.batch_get([{"pk": j, "sk": "JOURNAL"} for j in sorted(journals)], consistent=True)
    return {item["pk"]: {_counter(e): {m: int(v) for m, v in metrics.items()}
                         for e, metrics in item.get("deltas", {}).items()} for item in items}


@dataclass
class _Transaction:
    """Counter updates and the journal entries they consume: at most 100 items together."""

    counters: dict[CounterKey, list[str]] = field(default_factory=lambda: defaultdict(list))
    journals: dict[str, list[CounterKey]] = field(default_factory=lambda: defaultdict(list))

    def size_with(self, counter: CounterKey, journals: list[str]) -> int:
        return (len(self.counters) + (counter not in self.counters)
                + len(self.journals) + len(set(journals) - set(self.journals)))

    def add(self, counter: CounterKey, journals: list[str]) -> None:
        for journal in journals:
            self.counters[counter].append(journal)
            self.journals[journal].append(counter)

    def actions(self, left: dict[str, Deltas]) -> list[dict]:
        actions = []
        for (pk, sk), journals in self.counters.items():
            total: dict[str, int] = defaultdict(int)
            for journal in journals:
                for metric, amount in left[journal][(pk, sk)].items():
                    total[metric] += amount
            names = {f"#m{i}": metric for i, metric in enumerate(total)}
            actions.append({"Update": {
                "Key": {"pk": pk, "sk": sk},
                "UpdateExpression": "ADD " + ", ".join(f"#m{i} :m{i}" for i in range(len(total))),
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": {f":m{i}": amount for i, amount in enumerate(total.values())}}})
        for journal, counters in self.journals.items():
            names = {"#d": "deltas", **{f"#c{i}": _entry(c) for i, c in enumerate(counters)}}
            actions.append({"Update": {
                "Key": {"pk": journal, "sk": "JOURNAL"},
                "UpdateExpression": "REMOVE " + ", ".join(f"#d.#c{i}" for i in range(len(counters))),
                "ConditionExpression": " AND ".join(f"attribute_exists(#d.#c{i})" for i in range(len(counters))),
                "ExpressionAttributeNames": names}})
        return actions


def _pack(left: dict[str, Deltas]) -> list[_Transaction]:
    """Transactions covering every pending entry, each counter item in one of them (unless more than 99
    journals hold it), so a counter item takes one update for all of them."""
    by_counter: dict[CounterKey, list[str]] = defaultdict(list)
    for journal, deltas in left.items():
        for counter in deltas:
            by_counter[counter].append(journal)
    packed, current = [], _Transaction()
    for counter in sorted(by_counter):
        journals = sorted(by_counter[counter])
        for start in range(0, len(journals), MAX_ACTIONS - 1):
            part = journals[start:start + MAX_ACTIONS - 1]
            if current.counters and current.size_with(counter, part) > MAX_ACTIONS:
                packed.append(current)
                current = _Transaction()
            current.add(counter, part)
    if current.counters:
        packed.append(current)
    return packed


def apply(journals: dict[str, Deltas]) -> set[str]:
    """Apply the pending entries of `journals`; answers the journals now fully applied. An entry someone else
    applied meanwhile fails its guard: the journal is read again and only what is left is applied. A journal
    refused otherwise (collisions outlasting transact_write's retries) is left to a redelivery of its events."""
    left = {journal: dict(deltas) for journal, deltas in journals.items() if deltas}
    left_for_later: set[str] = set()
    for _ in range(_ROUNDS):
        stale: set[str] = set()
        for transaction in _pack(left):
            try:
                dynamo.transact_write(transaction.actions(left))
            except ClientError as exc:
                if dynamo.error_code(exc) != "TransactionCanceledException" or dynamo.is_transient(exc):
                    logger.warning("journals left for a redelivery", extra={"journals": list(transaction.journals)},
                                   exc_info=True)
                    left_for_later |= set(transaction.journals)
                    continue
                guards = dynamo.cancellation_reasons(exc)[len(transaction.counters):]
                stale |= {journal for journal, reason in zip(transaction.journals, guards, strict=False)
                          if reason == "ConditionalCheckFailed"}
                continue
            for journal, counters in transaction.journals.items():
                for counter in counters:
                    del left[journal][counter]
        if stale:
            left.update({journal: {} for journal in stale})
            left.update(read(stale))
        left = {journal: deltas for journal, deltas in left.items() if deltas and journal not in left_for_later}
        if not stale:
            break
    return set(journals) - set(left) - left_for_later
