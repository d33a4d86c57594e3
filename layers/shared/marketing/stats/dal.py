"""DynamoDB access for statistics. Keys (see docs/data-model.md):

    counters        pk T#{s}#STATS#{topic_type}#{topic_id}   sk C#{channel}#{day}#{group}   (ADD per metric)
    unique marker   pk T#{s}#STATSU#{topic_type}#{topic_id}#{day}#{subject}   sk {channel}#{metric}
    event record    pk T#{s}#STATSEVT#{origin}[#{sender}]#{event_id}  sk EVENT   (names its journal)
                    gsi1pk T#{s}#STATSLOG#{topic_type}#{topic_id}#{day}#{n}   gsi1sk {ctime}#{origin}#{event_id}
    journal         pk T#{s}#STATSJ#{id}   sk JOURNAL   (stats/journal.py)

A topic's operation records of a day spread over RECORD_SHARDS index partitions `n` (picked by the record's
key), merged on read in event time order. `channel` is `*` for the all-channel items every event moves, or
the event's own channel. `{s}` is the scope, `{tenant_id}#A#{app_id}` (marketing.core.identity.scope_of):
every item belongs to one app of one tenant.

Counting is exactly once, in two steps. Claim: each event's record is put with `attribute_not_exists`, with
its new unique markers and a journal of the counter deltas they cause, in one transaction, so a redelivered
event cancels it and is dropped on the retry. Apply: every counter item takes one `ADD` for the whole batch,
consuming the journals' entries exactly once (stats/journal.py). A unique metric moves only with the
conditional put of its marker.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

from marketing.core import dynamo, pagination
from marketing.core.observability import logger
from marketing.stats import journal
from marketing.stats.metrics import Running

ALL_CHANNELS = "*"
# A topic takes 5,000 events a second (docs/data-model.md, "Hot keys and limits"), each one operation record
# written to the index partition of its topic and day: 10 shards keep each near 500 writes a second, half of
# what a partition takes, for records up to 1 KB.
RECORD_SHARDS = 10
MAX_ACTIONS = dynamo.MAX_TRANSACT_ACTIONS
_ATTEMPTS = 6  # rounds of dropping what failed conditions reported


@dataclass
class Tally:
    """One event as the counters see it: where it counts, what it adds, and its operation record."""

    scope: str  # the tenant and app (core.identity.scope_of) the event counts in: every key starts with it
    origin: str  # "api" (a back end or an operator), "user" (a user, for themselves) or "bus" (a domain event)
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
    ttl: int = 0  # epoch seconds: records, markers and journals expire, counters stay
    running: Running | None = None
    sender: str | None = None  # the user who sent a "user" event

    @property
    def record_key(self) -> dict[str, str]:
        """Ids are the sender's: a domain event, a back end's event and each user's events have their own, so
        nobody can take an id someone else will send (an event id never holds `#`)."""
        origin = f"{self.origin}#{self.sender}" if self.sender else self.origin
        return {"pk": f"T#{self.scope}#STATSEVT#{origin}#{self.event_id}", "sk": "EVENT"}

    def record_item(self, journal_key: str | None) -> dict[str, Any]:
        """The operation record: listed per topic and day through gsi1, so a day can be audited or recounted;
        it names the journal its counts wait in, so a redelivery can finish applying them."""
        partition = _records_partition(self.scope, self.topic_type, self.topic_id, self.day)
        shard = dynamo.shard_of(self.record_key["pk"], RECORD_SHARDS)
        item = {**self.record_key, "gsi1pk": f"{partition}#{shard}",
                "gsi1sk": f"{self.event_time}#{self.origin}#{self.event_id}",
                "event_id": self.event_id, "origin": self.origin, "event_type": self.event_type, "day": self.day,
                "channel": self.channels[1] if len(self.channels) > 1 else None,
                "processed_at": self.processed_at, "ttl": self.ttl, "sender": self.sender,
                "event": json.dumps(self.event, separators=(",", ":"))}  # as received: one attribute, not a map
        return {**item, "journal": journal_key} if journal_key else item

    def counter_key(self, channel: str) -> tuple[str, str]:
        return (f"T#{self.scope}#STATS#{self.topic_type}#{self.topic_id}",
                f"C#{channel}#{self.day}#{self.group}")

    def marker_keys(self) -> list[tuple[tuple[str, str], str, str]]:
        """((pk, sk), channel, metric) of every unique marker this event may claim."""
        return [((f"T#{self.scope}#STATSU#{self.topic_type}#{self.topic_id}#{self.day}#{subject}",
                  f"{channel}#{metric}"), channel, metric)
                for metric, subject in self.uniques for channel in self.channels]


def _records_partition(scope: str, topic_type: str, topic_id: str, day: str) -> str:
    """The operation records' index partition of a topic and day, before its shard number."""
    return f"T#{scope}#STATSLOG#{topic_type}#{topic_id}#{day}"


class Conflicted(Exception):
    """Transactions kept colliding with concurrent writers: let the queue deliver these again."""


@dataclass
class _Plan:
    """One claim transaction: its actions, what a failed condition would mean per action, and the deltas
    its journal holds."""

    actions: list[dict] = field(default_factory=list)
    roles: list[tuple[str, Any]] = field(default_factory=list)  # ("record", tally) | ("marker", key) | ("running", key)
    deltas: journal.Deltas = field(default_factory=dict)


@dataclass
class Claim:
    """Events claimed in one transaction (their counts wait in `journal`), and the repeats it dropped."""

    journal: str | None
    deltas: journal.Deltas
    counted: list[Tally]
    repeated: list[Tally]


def _running_key(tally: Tally) -> tuple[str, str]:
    return f"T#{tally.scope}#STATSRUN#{tally.running.key}", "RUN"  # type: ignore[union-attr]


def _plan(tallies: list[Tally], existing_markers: set, levels: dict[tuple[str, str], int],
          journal_key: str) -> _Plan:
    plan = _Plan()
    counters: journal.Deltas = defaultdict(lambda: defaultdict(int))
    claimed: set = set()
    raised: dict[tuple[str, str], tuple[int, int]] = {}  # running item → (level before, level after)
    for tally in tallies:
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
    plan.deltas = {key: {m: n for m, n in metrics.items() if n} for key, metrics in counters.items()
                   if any(metrics.values())}
    for tally in tallies:
        plan.actions.append({"Put": {"Item": tally.record_item(journal_key if plan.deltas else None),
                                     "ConditionExpression": "attribute_not_exists(pk)"}})
        plan.roles.append(("record", tally))
    if plan.deltas:
        plan.actions.append(journal.put_action(journal_key, plan.deltas, max(t.ttl for t in tallies)))
        plan.roles.append(("journal", journal_key))
    return plan


def _chunks(tallies: list[Tally], taken: set) -> list[list[Tally]]:
    """Consecutive groups of one scope's events whose claim stays within 100 actions: records, markers not
    known to be `taken` (shared ones counted once), running levels and the journal."""
    chunks: list[list[Tally]] = []
    current: list[Tally] = []
    keys: set = {("journal",)}
    for tally in tallies:
        mine = {("record", tally.record_key["pk"])}
        mine |= {("marker", key) for key, _, _ in tally.marker_keys() if key not in taken}
        if tally.running:
            mine.add(("running", _running_key(tally)))
        if current and (len(keys | mine) > MAX_ACTIONS or tally.scope != current[0].scope):
            chunks.append(current)
            current, keys = [], {("journal",)}
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


def _claim(tallies: list[Tally], taken: set, levels: dict) -> Claim:
    """Claim `tallies` in one transaction with the journal of their deltas, dropping events claimed before and
    markers already taken (`taken` learns the markers this transaction takes or finds). Raises `Conflicted`
    when collisions outlast transact_write's retries."""
    pending = list(tallies)
    journal_key = journal.new_key(tallies[0].scope)
    for _ in range(_ATTEMPTS):
        if not pending:
            return Claim(None, {}, [], list(tallies))
        plan = _plan(pending, taken, levels, journal_key)
        try:
            dynamo.transact_write(plan.actions)
        except ClientError as exc:
            if dynamo.is_transient(exc):
                raise Conflicted(f"{len(pending)} events kept conflicting") from exc
            reasons = dynamo.cancellation_reasons(exc)  # re-raises anything but a cancelled transaction
            failed = [role for role, reason in zip(plan.roles, reasons, strict=False)
                      if reason == "ConditionalCheckFailed"]
            if not failed:
                raise
            for kind, what in failed:
                if kind == "record":
                    pending = [t for t in pending if t is not what]  # claimed before: a repeat delivery
                elif kind == "marker":
                    taken.add(what)  # this subject was counted for the day already
                elif kind == "running":
                    levels.update({what: 0, **_levels_of({what})})  # moved since it was read
            continue
        taken.update(what for kind, what in plan.roles if kind == "marker")
        levels.update({key: item["Put"]["Item"]["total"]
                       for (kind, key), item in zip(plan.roles, plan.actions, strict=True) if kind == "running"})
        ids = {id(t) for t in pending}
        return Claim(journal_key if plan.deltas else None, plan.deltas, pending,
                     [t for t in tallies if id(t) not in ids])
    raise Conflicted(f"{len(pending)} events kept failing their conditions")


def _claim_all(ordered: list[Tally]) -> tuple[list[Claim], list[Tally]]:
    """Claim the batch chunk by chunk; a chunk refused for another reason than a condition or a collision is
    claimed one event at a time, so one bad event cannot hold back the others."""
    taken, levels = _taken_markers(ordered), _levels(ordered)
    claims, failed = [], []
    for chunk in _chunks(ordered, taken):
        try:
            claims.append(_claim(chunk, taken, levels))
            continue
        except Conflicted:
            failed += chunk
            continue
        except ClientError:
            if len(chunk) == 1:
                logger.exception("an event could not be counted", extra={"event_id": chunk[0].event_id})
                failed += chunk
                continue
        for tally in chunk:  # isolate the event that breaks the transaction
            try:
                claims.append(_claim([tally], taken, levels))
            except (Conflicted, ClientError):
                logger.exception("an event could not be counted", extra={"event_id": tally.event_id})
                failed.append(tally)
    return claims, failed


def _journals_of(repeats: list[Tally]) -> dict[str, list[Tally]]:
    """The journals that the records of repeated events name: their counts may not be applied yet."""
    if not repeats:
        return {}
    by_record = {t.record_key["pk"]: t for t in repeats}
    named: dict[str, list[Tally]] = defaultdict(list)
    for item in dynamo.batch_get([t.record_key for t in repeats], consistent=True):
        if item.get("journal"):
            named[item["journal"]].append(by_record[item["pk"]])
    return named


def count(tallies: list[Tally]) -> tuple[int, list[Tally]]:
    """Count a batch exactly once: (events counted now, events that must be delivered again).

    Repeats within the batch (the same record key) are counted once. Every counter item the batch moves
    takes one update; a journal left unapplied by an earlier attempt is finished here when one of its
    events comes again."""
    unique: dict[str, Tally] = {}
    for tally in tallies:
        unique.setdefault(tally.record_key["pk"], tally)
    # Events of the same counter items side by side: each journal then holds few counter items.
    ordered = sorted(unique.values(), key=lambda t: (t.scope, t.topic_type, t.topic_id, t.day, t.group, t.channels,
                                                     t.running.total if t.running else 0))
    claims, failed = _claim_all(ordered)
    owed = {c.journal: c.deltas for c in claims if c.journal}
    waiting: dict[str | None, list[Tally]] = defaultdict(list)  # journal → events whose counts wait in it
    for claim in claims:
        waiting[claim.journal] += claim.counted
    earlier = _journals_of([t for c in claims for t in c.repeated])
    found = journal.read(set(earlier)) if earlier else {}
    owed.update({key: deltas for key, deltas in found.items() if deltas})
    for key, repeats in earlier.items():
        waiting[key] += repeats
    unseen = set(earlier) - set(found)  # named by a record, so written, yet not visible: never guess it applied
    applied = journal.apply(owed)
    for key, events in waiting.items():
        if key in unseen or (key in owed and key not in applied):
            failed += events  # delivered again, they finish their journal
    left = {id(t) for t in failed}
    counted = sum(1 for claim in claims for t in claim.counted if id(t) not in left)
    return counted, failed


# --- reads ---

def counters(scope: str, topic_type: str, topic_id: str, channel: str, first_day: str,
             last_day: str) -> list[dict[str, Any]]:
    """Every counter item of the topic and channel between two days (inclusive): {day, group, metrics}."""
    pk = f"T#{scope}#STATS#{topic_type}#{topic_id}"
    condition = Key("pk").eq(pk) & Key("sk").between(f"C#{channel}#{first_day}#", f"C#{channel}#{last_day}#~")
    rows = []
    for item in dynamo.query_all(KeyConditionExpression=condition):
        _, _, day, group = item["sk"].split("#", 3)
        metrics = {k: v for k, v in dynamo.plain(item).items() if k not in ("pk", "sk")}
        rows.append({"day": day, "group": group, "metrics": metrics})
    return rows


def records(scope: str, topic_type: str, topic_id: str, day: str, limit: int,
            next_token: str | None) -> tuple[list[dict[str, Any]], str | None]:
    """The operation records of one topic and day, in event time order: its shards merged."""
    partition = _records_partition(scope, topic_type, topic_id, day)
    items, token = pagination.merged_page(
        dynamo.table(), partitions=[{"gsi1pk": f"{partition}#{n}"} for n in range(RECORD_SHARDS)], index="gsi1",
        limit=limit, next_token=next_token)
    keep = ("event_id", "origin", "sender", "event_type", "day", "channel", "processed_at", "event")
    alive = [i for i in items if int(i.get("ttl", 0)) > time.time()]  # TTL deletes lag: hide expired records
    return [{**{k: v for k, v in dynamo.plain(i).items() if k in keep}, "event": json.loads(i["event"])}
            for i in alive], token
