"""DynamoDB access for statistics. Keys (see docs/data-model.md):

    counters        pk T#{t}#STATS#{topic_type}#{topic_id}   sk C#{channel}#{day}#{group}   (ADD per metric)
    unique marker   pk T#{t}#STATSU#{topic_type}#{topic_id}#{day}#{subject}   sk {channel}#{metric}
    event record    pk T#{t}#STATSEVT#{origin}#{event_id}    sk EVENT
                    gsi1pk T#{t}#STATSLOG#{topic_type}#{topic_id}#{day}   gsi1sk {ctime}#{origin}#{event_id}

`channel` is `*` for the all-channel items every event moves, or the event's own channel.

Counting is exactly once: each event's record is put with `attribute_not_exists` in the same transaction as
the counter updates it causes, so a redelivered event cancels the transaction and is dropped on the retry.
Counters are aggregated per transaction: one `ADD` per (topic, channel, day, group) item, however many
events of the batch touch it. A unique metric moves only with the conditional put of its marker.
"""

from __future__ import annotations

import json
import random
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

from marketing.core import dynamo, pagination
from marketing.core.observability import logger
from marketing.stats.metrics import Running

ALL_CHANNELS = "*"
MAX_ACTIONS = 100  # TransactWriteItems' limit
_RETRYABLE = {"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded", "RequestLimitExceeded"}
_ATTEMPTS = 6


@dataclass
class Tally:
    """One event as the counters see it: where it counts, what it adds, and its operation record."""

    tenant: str
    origin: str  # "api" (intake) or "bus" (a domain event): ids of the two never collide
    event_id: str
    event_type: str
    topic_type: str
    topic_id: str
    day: str
    group: str
    channels: tuple[str, ...]  # ("*",) or ("*", channel)
    counts: dict[str, int]
    uniques: list[tuple[str, str]]  # (metric, subject)
    event: dict[str, Any] = field(default_factory=dict)  # the event as received, kept as the record
    event_time: str = ""
    processed_at: str = ""
    ttl: int = 0  # epoch seconds: records and markers expire, counters stay
    running: Running | None = None

    @property
    def record_key(self) -> dict[str, str]:
        return {"pk": f"T#{self.tenant}#STATSEVT#{self.origin}#{self.event_id}", "sk": "EVENT"}

    def record_item(self) -> dict[str, Any]:
        """The operation record: listed per topic and day through gsi1, so a day can be audited or recounted."""
        return {**self.record_key,
                "gsi1pk": f"T#{self.tenant}#STATSLOG#{self.topic_type}#{self.topic_id}#{self.day}",
                "gsi1sk": f"{self.event_time}#{self.origin}#{self.event_id}",
                "event_id": self.event_id, "origin": self.origin, "event_type": self.event_type, "day": self.day,
                "channel": self.channels[1] if len(self.channels) > 1 else None,
                "processed_at": self.processed_at, "ttl": self.ttl,
                "event": json.dumps(self.event, separators=(",", ":"))}  # as received: one attribute, not a map

    def counter_key(self, channel: str) -> tuple[str, str]:
        return (f"T#{self.tenant}#STATS#{self.topic_type}#{self.topic_id}",
                f"C#{channel}#{self.day}#{self.group}")

    def marker_keys(self) -> list[tuple[tuple[str, str], str, str]]:
        """((pk, sk), channel, metric) of every unique marker this event may claim."""
        return [((f"T#{self.tenant}#STATSU#{self.topic_type}#{self.topic_id}#{self.day}#{subject}",
                  f"{channel}#{metric}"), channel, metric)
                for metric, subject in self.uniques for channel in self.channels]


class Conflicted(Exception):
    """Transactions kept colliding with concurrent writers: let the queue deliver these again."""


@dataclass
class _Plan:
    """One transaction: its actions and, per action, what a failed condition would mean."""

    actions: list[dict] = field(default_factory=list)
    roles: list[tuple[str, Any]] = field(default_factory=list)  # ("record", tally) | ("marker", key) | ("counter", key)


def _running_key(tally: Tally) -> tuple[str, str]:
    return f"T#{tally.tenant}#STATSRUN#{tally.running.key}", "RUN"  # type: ignore[union-attr]


def _plan(tallies: list[Tally], existing_markers: set, levels: dict[tuple[str, str], int]) -> _Plan:
    plan = _Plan()
    counters: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    claimed: set = set()
    raised: dict[tuple[str, str], tuple[int, int]] = {}  # running item → (level before, level after)
    for tally in tallies:
        plan.actions.append({"Put": {"Item": tally.record_item(),
                                     "ConditionExpression": "attribute_not_exists(pk)"}})
        plan.roles.append(("record", tally))
        counts = tally.counts
        if tally.running:
            key = _running_key(tally)
            before = raised[key][1] if key in raised else levels.get(key, 0)
            counts = tally.running.counts(counts, before)
            if tally.running.total > before:
                raised[key] = (raised.get(key, (before, 0))[0], tally.running.total)
        for channel in tally.channels:
            for metric, amount in counts.items():
                counters[tally.counter_key(channel)][metric] += amount
        for key, channel, metric in tally.marker_keys():
            if key in existing_markers or key in claimed:
                continue
            claimed.add(key)
            plan.actions.append({"Put": {"Item": {"pk": key[0], "sk": key[1], "ttl": tally.ttl},
                                         "ConditionExpression": "attribute_not_exists(pk)"}})
            plan.roles.append(("marker", key))
            counters[tally.counter_key(channel)][metric] += 1
    for (pk, sk), (before, after) in raised.items():
        guard = ({"ConditionExpression": "attribute_not_exists(pk)"} if not before else
                 {"ConditionExpression": "#total = :before", "ExpressionAttributeNames": {"#total": "total"},
                  "ExpressionAttributeValues": {":before": before}})
        plan.actions.append({"Put": {"Item": {"pk": pk, "sk": sk, "total": after}, **guard}})
        plan.roles.append(("running", (pk, sk)))
    for (pk, sk), deltas in counters.items():
        if not any(deltas.values()):
            continue
        names = {f"#m{i}": metric for i, metric in enumerate(deltas)}
        values = {f":m{i}": amount for i, amount in enumerate(deltas.values())}
        plan.actions.append({"Update": {
            "Key": {"pk": pk, "sk": sk},
            "UpdateExpression": "ADD " + ", ".join(f"#m{i} :m{i}" for i in range(len(deltas))),
            "ExpressionAttributeNames": names, "ExpressionAttributeValues": values}})
        plan.roles.append(("counter", (pk, sk)))
    return plan


def _chunks(tallies: list[Tally]) -> list[list[Tally]]:
    """Consecutive groups of events whose transaction stays within 100 actions (markers and counters that
    several events share are counted once)."""
    chunks: list[list[Tally]] = []
    current: list[Tally] = []
    keys: set = set()
    for tally in tallies:
        mine = {("record", tally.record_key["pk"])}
        mine |= {("counter", tally.counter_key(c)) for c in tally.channels}
        mine |= {("marker", key) for key, _, _ in tally.marker_keys()}
        if tally.running:
            mine.add(("running", _running_key(tally)))
        if current and len(keys | mine) > MAX_ACTIONS:
            chunks.append(current)
            current, keys = [], set()
        current.append(tally)
        keys |= mine
    if current:
        chunks.append(current)
    return chunks


def _taken_markers(tallies: list[Tally]) -> set[tuple[str, str]]:
    """The batch's unique markers that exist already (returning users are the usual case). Read first so the
    transaction seldom fails on them: a cancelled transaction costs its writes too. The conditions still
    decide; a marker taken after this read only costs a retry."""
    return set(_existing({key for tally in tallies for key, _, _ in tally.marker_keys()}))


def _levels(tallies: list[Tally]) -> dict[tuple[str, str], int]:
    """The running totals counted so far for the batch's entities."""
    return _levels_of({_running_key(t) for t in tallies if t.running})


def _levels_of(keys: set[tuple[str, str]]) -> dict[tuple[str, str], int]:
    # Consistent: a level is re-read after its guard failed, and a stale read would fail the guard again.
    return {key: int(item["total"]) for key, item in _existing(keys, consistent=True).items()}


def _existing(keys: set[tuple[str, str]], *, consistent: bool = False) -> dict[tuple[str, str], dict]:
    """The items among `keys` that exist."""
    items = dynamo.batch_get([{"pk": pk, "sk": sk} for pk, sk in sorted(keys)], consistent=consistent)
    return {(item["pk"], item["sk"]): item for item in items}


def _commit(tallies: list[Tally], taken: set, levels: dict) -> list[Tally]:
    """Count `tallies` in one transaction, dropping events already counted and markers already taken (`taken`
    learns the markers this transaction takes or finds). Answers the events counted now, not the repeats.
    Raises `Conflicted` after repeated collisions."""
    pending = list(tallies)
    for attempt in range(_ATTEMPTS):
        if not pending:
            return []
        plan = _plan(pending, taken, levels)
        try:
            dynamo.transact_write(plan.actions)
            taken.update(what for kind, what in plan.roles if kind == "marker")
            levels.update({key: item["Put"]["Item"]["total"] for (kind, key), item in zip(plan.roles, plan.actions,
                                                                                         strict=True)
                           if kind == "running"})
            return pending
        except ClientError as exc:
            reasons = dynamo.cancellation_reasons(exc)  # re-raises anything but a cancelled transaction
            failed = [role for role, reason in zip(plan.roles, reasons, strict=False)
                      if reason == "ConditionalCheckFailed"]
            if not failed and not set(reasons) & _RETRYABLE:
                raise
        for kind, what in failed:
            if kind == "record":
                pending = [t for t in pending if t is not what]  # counted before: a repeat delivery
            elif kind == "marker":
                taken.add(what)  # this subject was counted for the day already
            elif kind == "running":
                levels.update({what: 0, **_levels_of({what})})  # moved since it was read
        if not failed:  # a collision with a concurrent writer: back off, then try again
            time.sleep(min(0.05 * 2 ** attempt, 1) * random.random())
    raise Conflicted(f"{len(pending)} events kept conflicting")


def count(tallies: list[Tally]) -> tuple[int, list[Tally]]:
    """Count a batch exactly once: (events counted now, events that failed and must be delivered again).

    Repeats within the batch (the same record key) are counted once. A transaction that fails for a reason
    other than a collision is retried one event at a time, so one bad event cannot hold back the others."""
    unique: dict[str, Tally] = {}
    for tally in tallies:
        unique.setdefault(tally.record_key["pk"], tally)
    # Events of the same counter items side by side: each transaction then updates few items, once each.
    ordered = sorted(unique.values(), key=lambda t: (t.tenant, t.topic_type, t.topic_id, t.day, t.group, t.channels,
                                                     t.running.total if t.running else 0))
    counted, failed = 0, []
    taken, levels = _taken_markers(ordered), _levels(ordered)
    for chunk in _chunks(ordered):
        try:
            counted += len(_commit(chunk, taken, levels))
        except Conflicted:
            failed += chunk
        except ClientError:
            if len(chunk) == 1:
                logger.exception("an event could not be counted", extra={"event_id": chunk[0].event_id})
                failed += chunk
                continue
            for tally in chunk:  # isolate the event that breaks the transaction
                one_counted, one_failed = count([tally])
                counted += one_counted
                failed += one_failed
    return counted, failed


# --- reads ---

def counters(tenant: str, topic_type: str, topic_id: str, channel: str, first_day: str,
             last_day: str) -> list[dict[str, Any]]:
    """Every counter item of the topic and channel between two days (inclusive): {day, group, metrics}."""
    pk = f"T#{tenant}#STATS#{topic_type}#{topic_id}"
    condition = Key("pk").eq(pk) & Key("sk").between(f"C#{channel}#{first_day}#", f"C#{channel}#{last_day}#~")
    kwargs: dict[str, Any] = {"KeyConditionExpression": condition}
    items = []
    while True:
        answer = dynamo.table().query(**kwargs)
        items += answer.get("Items", [])
        if "LastEvaluatedKey" not in answer:
            break
        kwargs["ExclusiveStartKey"] = answer["LastEvaluatedKey"]
    rows = []
    for item in items:
        _, _, day, group = item["sk"].split("#", 3)
        metrics = {k: v for k, v in dynamo.plain(item).items() if k not in ("pk", "sk")}
        rows.append({"day": day, "group": group, "metrics": metrics})
    return rows


def records(tenant: str, topic_type: str, topic_id: str, day: str, limit: int,
            next_token: str | None) -> tuple[list[dict[str, Any]], str | None]:
    """The operation records of one topic and day, in event time order."""
    items, token = pagination.query_page(
        dynamo.table(), partition={"gsi1pk": f"T#{tenant}#STATSLOG#{topic_type}#{topic_id}#{day}"}, index="gsi1",
        limit=limit, next_token=next_token)
    keep = ("event_id", "origin", "event_type", "day", "channel", "processed_at", "event")
    alive = [i for i in items if int(i.get("ttl", 0)) > time.time()]  # TTL deletes lag: hide expired records
    return [{**{k: v for k, v in dynamo.plain(i).items() if k in keep}, "event": json.loads(i["event"])}
            for i in alive], token
