"""DynamoDB access for the campaign engine. Keys (see docs/data-model.md):

    campaign        pk T#{s}#CAMPAIGNS          sk CAMPAIGN#{campaign}   (task_count: linked tasks)
    audience        pk T#{s}#AUDIENCES          sk AUDIENCE#{audience}   (refs: campaigns using it)
    task            pk T#{s}#TASKS              sk TASK#{task}           gsi1 T#{s}#EVENT#{event_type} / TASK#{task}
    campaign → task pk T#{s}#CAMPAIGN#{campaign} sk TASK#{task}
    progress        pk T#{s}#U#{user}           sk TASKPROG#{task}
    progress marker pk T#{s}#U#{user}           sk TASKEV#{task}#{event}   (one per counted event, ttl)
    completion log  pk T#{s}#TASK#{task}#LOG#{n}   sk LOG#{completion}
                    gsi1 T#{s}#U#{user}#TASKLOG / TASK#{task}#{completion}
    task stats      pk T#{s}#TASK#{task}#STATS#{n} sk STATS
    grant batch     pk T#{s}#GRANTBATCH#{batch} sk GRANTBATCH   (chunks: the offsets of the chunks counted)

A hot task's completions spread over TASK_SHARDS write shards `n` (picked by the completion id), so neither
one stats item nor one log partition takes every completion; reads merge the shards.

`{s}` is the scope of the caller, `{tenant_id}#A#{app_id}` (marketing.core.identity.scope_of): every item
belongs to one app of one tenant.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

from marketing.core import dynamo, pagination
from marketing.rewards.dal import grant_key

# Write shards of a task's completion stats and log: a task takes 1,000 completions a second (docs/data-model.md,
# "Hot keys and limits"), each a transaction (2 write units per item), so 10 shards keep every one of them
# near 200 writes a second, a fifth of what a partition takes.
TASK_SHARDS = 10


class ConditionFailed(Exception):
    """A guarded write found the item in another state; `item` is what DynamoDB saw (or None)."""

    def __init__(self, item: dict | None = None, reasons: list[str] | None = None):
        super().__init__("condition failed")
        self.item = item
        self.reasons = reasons or []


_strip = dynamo.entity


def _old_image(raw: dict | None) -> dict | None:
    """An item as returned by ReturnValuesOnConditionCheckFailure (typed attribute values)."""
    if not raw:
        return None
    from boto3.dynamodb.types import TypeDeserializer

    deserializer = TypeDeserializer()
    return dynamo.plain({k: deserializer.deserialize(v) for k, v in raw.items()})


def _transact(actions: list[dict]) -> None:
    """A transaction; on a failed condition raises ConditionFailed with the reason of each action."""
    try:
        dynamo.transact_write(actions)
    except ClientError as exc:
        reasons = dynamo.cancellation_reasons(exc)
        if "ConditionalCheckFailed" not in reasons:
            raise
        raw = exc.response.get("CancellationReasons", [])
        item = next((r.get("Item") for r in raw if r.get("Code") == "ConditionalCheckFailed" and r.get("Item")),
                    None)
        raise ConditionFailed(_old_image(item), reasons) from exc


def _query_all(key_condition: Any, **kwargs: Any) -> list[dict]:
    """Every item a Query finds (1 MB pages, no item limit), as the domain sees them."""
    return [_strip(i) for i in dynamo.query_all(KeyConditionExpression=key_condition, **kwargs)]


def _page(partition: str, prefix: str, limit: int, next_token: str | None) -> tuple[list[dict], str | None]:
    items, token = pagination.query_page(dynamo.table(), partition={"pk": partition}, sort_prefix=("sk", prefix),
                                         limit=limit, next_token=next_token)
    return [_strip(i) for i in items], token


def _get(pk: str, sk: str, *, consistent: bool = False) -> dict | None:
    return _strip(dynamo.table().get_item(Key={"pk": pk, "sk": sk}, ConsistentRead=consistent).get("Item"))


def _batch_get(keys: list[dict[str, str]]) -> list[dict]:
    return [_strip(i) for i in dynamo.batch_get(keys)]


# --- campaigns ---------------------------------------------------------------------------------------------

def campaign_key(scope: str, campaign_id: str) -> dict[str, str]:
    return {"pk": f"T#{scope}#CAMPAIGNS", "sk": f"CAMPAIGN#{campaign_id}"}


def audience_key(scope: str, audience_id: str) -> dict[str, str]:
    return {"pk": f"T#{scope}#AUDIENCES", "sk": f"AUDIENCE#{audience_id}"}


def task_key(scope: str, task_id: str) -> dict[str, str]:
    return {"pk": f"T#{scope}#TASKS", "sk": f"TASK#{task_id}"}


def _audience_ref(scope: str, audience_id: str, delta: int) -> dict:
    """Move an audience's reference count; the audience must exist (a campaign cannot name a missing one)."""
    return {"Update": {"Key": audience_key(scope, audience_id), "UpdateExpression": "ADD refs :d",
                       "ConditionExpression": "attribute_exists(pk)", "ExpressionAttributeValues": {":d": delta}}}


def get_campaign(scope: str, campaign_id: str, *, consistent: bool = False) -> dict | None:
    return _get(**campaign_key(scope, campaign_id), consistent=consistent)


def get_campaigns(scope: str, campaign_ids: Iterable[str]) -> dict[str, dict]:
    items = _batch_get([campaign_key(scope, c) for c in sorted(set(campaign_ids))])
    return {i["campaign_id"]: i for i in items}


def create_campaign(scope: str, campaign: dict[str, Any]) -> None:
    """The campaign, and its audience's reference count in the same transaction."""
    item = {**campaign_key(scope, campaign["campaign_id"]), **{k: v for k, v in campaign.items() if v is not None}}
    actions = [{"Put": {"Item": item, "ConditionExpression": "attribute_not_exists(pk)"}}]
    if campaign.get("audience_id"):
        actions.append(_audience_ref(scope, campaign["audience_id"], 1))
    _transact(actions)


def _same_audience(old: str | None) -> tuple[str, dict]:
    if old is None:
        return "attribute_not_exists(audience_id)", {}
    return "audience_id = :old_audience", {":old_audience": old}


def update_campaign(scope: str, current: dict[str, Any], fields: dict[str, Any]) -> dict:
    """Replace the campaign's fields unless it has ENDED, guarded on the audience it had when read (`current`),
    so the audiences' reference counts move exactly once. Answers the campaign as written, without a re-read."""
    old_audience, new_audience = current.get("audience_id"), fields.get("audience_id")
    expression, names, values = dynamo.update_expression(fields)
    same, same_values = _same_audience(old_audience)
    update = {"Key": campaign_key(scope, current["campaign_id"]), "UpdateExpression": expression,
              "ConditionExpression": f"attribute_exists(pk) AND #status <> :ended AND {same}",
              "ExpressionAttributeNames": {**names, "#status": "status"},
              "ExpressionAttributeValues": {**values, ":ended": "ENDED", **same_values}}
    if new_audience == old_audience:  # one item: a single UpdateItem says what it wrote
        try:
            return _strip(dynamo.table().update_item(**update, ReturnValues="ALL_NEW")["Attributes"])
        except ClientError as exc:
            if dynamo.is_condition_failure(exc):
                raise ConditionFailed() from exc
            raise
    actions = [{"Update": {**update, "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}}]
    if old_audience:
        actions.append(_audience_ref(scope, old_audience, -1))
    if new_audience:
        actions.append(_audience_ref(scope, new_audience, 1))
    _transact(actions)
    # A transaction returns no item: the write set every field but the id, `created_at` (fixed) and
    # `task_count` (moved by links meanwhile, so left out rather than answered stale).
    written = {**current, **fields}
    return {k: v for k, v in written.items() if v is not None and k != "task_count"}


def delete_campaign(scope: str, campaign_id: str, old_audience: str | None) -> None:
    """Only a campaign without linked tasks; its audience reference goes with it."""
    same, same_values = _same_audience(old_audience)
    actions = [{"Delete": {
        "Key": campaign_key(scope, campaign_id),
        "ConditionExpression": f"attribute_exists(pk) AND (attribute_not_exists(task_count) OR task_count = :zero)"
                               f" AND {same}",
        "ExpressionAttributeValues": {":zero": 0, **same_values},
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}}]
    if old_audience:
        actions.append(_audience_ref(scope, old_audience, -1))
    _transact(actions)


def list_campaigns(scope: str, limit: int, next_token: str | None) -> tuple[list[dict], str | None]:
    return _page(f"T#{scope}#CAMPAIGNS", "CAMPAIGN#", limit, next_token)


# --- audiences ---------------------------------------------------------------------------------------------

def get_audience(scope: str, audience_id: str, *, consistent: bool = False) -> dict | None:
    return _get(**audience_key(scope, audience_id), consistent=consistent)


def get_audiences(scope: str, audience_ids: Iterable[str]) -> dict[str, dict]:
    items = _batch_get([audience_key(scope, a) for a in sorted(set(audience_ids))])
    return {i["audience_id"]: i for i in items}


def create_audience(scope: str, audience: dict[str, Any]) -> None:
    item = {**audience_key(scope, audience["audience_id"]), **{k: v for k, v in audience.items() if v is not None}}
    dynamo.table().put_item(Item=item, ConditionExpression="attribute_not_exists(pk)")


def update_audience(scope: str, audience_id: str, fields: dict[str, Any]) -> dict:
    expression, names, values = dynamo.update_expression(fields)
    try:
        answer = dynamo.table().update_item(
            Key=audience_key(scope, audience_id), UpdateExpression=expression,
            ConditionExpression="attribute_exists(pk)", ExpressionAttributeNames=names,
            ExpressionAttributeValues=values, ReturnValues="ALL_NEW")
    except ClientError as exc:
        if dynamo.is_condition_failure(exc):
            raise ConditionFailed() from exc
        raise
    return _strip(answer["Attributes"])


def delete_audience(scope: str, audience_id: str) -> None:
    """Only an audience no campaign names (`refs` is moved by the campaigns' own transactions)."""
    try:
        dynamo.table().delete_item(
            Key=audience_key(scope, audience_id),
            ConditionExpression="attribute_exists(pk) AND (attribute_not_exists(refs) OR refs = :zero)",
            ExpressionAttributeValues={":zero": 0}, ReturnValuesOnConditionCheckFailure="ALL_OLD")
    except ClientError as exc:
        if dynamo.is_condition_failure(exc):
            raise ConditionFailed(_old_image(exc.response.get("Item"))) from exc
        raise


def list_audiences(scope: str, limit: int, next_token: str | None) -> tuple[list[dict], str | None]:
    return _page(f"T#{scope}#AUDIENCES", "AUDIENCE#", limit, next_token)


# --- tasks -------------------------------------------------------------------------------------------------

def _event_index(scope: str, event_type: str) -> str:
    return f"T#{scope}#EVENT#{event_type}"


def _task_out(item: dict | None) -> dict | None:
    if item is not None:
        item["campaign_ids"] = sorted(item.get("campaign_ids") or [])
    return item


def get_task(scope: str, task_id: str, *, consistent: bool = False) -> dict | None:
    return _task_out(_get(**task_key(scope, task_id), consistent=consistent))


def get_tasks(scope: str, task_ids: Iterable[str]) -> list[dict]:
    return [_task_out(i) for i in _batch_get([task_key(scope, t) for t in sorted(set(task_ids))])]


def create_task(scope: str, task: dict[str, Any]) -> None:
    item = {**task_key(scope, task["task_id"]), "gsi1pk": _event_index(scope, task["event_type"]),
            "gsi1sk": f"TASK#{task['task_id']}", **{k: v for k, v in task.items() if v is not None and
                                                     k != "campaign_ids"}}
    dynamo.table().put_item(Item=item, ConditionExpression="attribute_not_exists(pk)")


def update_task(scope: str, task_id: str, fields: dict[str, Any]) -> dict:
    """Replace the task's fields (its campaign links stay); the period never changes, as progress is keyed
    by it. The event index moves with `event_type`."""
    fields = {**fields, "gsi1pk": _event_index(scope, fields["event_type"])}
    expression, names, values = dynamo.update_expression(fields)
    try:
        answer = dynamo.table().update_item(
            Key=task_key(scope, task_id), UpdateExpression=expression,
            ConditionExpression="attribute_exists(pk) AND #period = :period",
            ExpressionAttributeNames={**names, "#period": "period"},
            ExpressionAttributeValues={**values, ":period": fields["period"]}, ReturnValues="ALL_NEW",
            ReturnValuesOnConditionCheckFailure="ALL_OLD")
    except ClientError as exc:
        if dynamo.is_condition_failure(exc):
            raise ConditionFailed(_old_image(exc.response.get("Item"))) from exc
        raise
    return _task_out(_strip(answer["Attributes"]))


def delete_task(scope: str, task_id: str) -> None:
    """Only a task no campaign links (an emptied string set disappears, so the test is `not exists`)."""
    try:
        dynamo.table().delete_item(
            Key=task_key(scope, task_id),
            ConditionExpression="attribute_exists(pk) AND attribute_not_exists(campaign_ids)",
            ReturnValuesOnConditionCheckFailure="ALL_OLD")
    except ClientError as exc:
        if dynamo.is_condition_failure(exc):
            raise ConditionFailed(_old_image(exc.response.get("Item"))) from exc
        raise


def list_tasks(scope: str, limit: int, next_token: str | None) -> tuple[list[dict], str | None]:
    items, token = _page(f"T#{scope}#TASKS", "TASK#", limit, next_token)
    return [_task_out(i) for i in items], token


def all_tasks(scope: str) -> list[dict]:
    """Every task of the app (the user's task view)."""
    return [_task_out(i) for i in _query_all(Key("pk").eq(f"T#{scope}#TASKS") & Key("sk").begins_with("TASK#"))]


def tasks_listening(scope: str, event_type: str) -> list[dict]:
    """The tasks listening to one event type: one Query, however many other tasks the app has."""
    return [_task_out(i) for i in _query_all(Key("gsi1pk").eq(_event_index(scope, event_type)), IndexName="gsi1")]


# --- campaign ↔ task links ---------------------------------------------------------------------------------

def _link_key(scope: str, campaign_id: str, task_id: str) -> dict[str, str]:
    return {"pk": f"T#{scope}#CAMPAIGN#{campaign_id}", "sk": f"TASK#{task_id}"}


def link(scope: str, campaign_id: str, task_id: str, created_at: str) -> None:
    """The link item, the campaign's task count and the task's campaign set move together."""
    _transact([
        {"Put": {"Item": {**_link_key(scope, campaign_id, task_id), "campaign_id": campaign_id,
                          "task_id": task_id, "created_at": created_at},
                 "ConditionExpression": "attribute_not_exists(pk)"}},
        {"Update": {"Key": campaign_key(scope, campaign_id), "UpdateExpression": "ADD task_count :one",
                    "ConditionExpression": "attribute_exists(pk)", "ExpressionAttributeValues": {":one": 1}}},
        {"Update": {"Key": task_key(scope, task_id), "UpdateExpression": "ADD campaign_ids :c",
                    "ConditionExpression": "attribute_exists(pk)", "ExpressionAttributeValues": {":c": {campaign_id}}}},
    ])


def unlink(scope: str, campaign_id: str, task_id: str) -> None:
    _transact([
        {"Delete": {"Key": _link_key(scope, campaign_id, task_id), "ConditionExpression": "attribute_exists(pk)"}},
        {"Update": {"Key": campaign_key(scope, campaign_id), "UpdateExpression": "ADD task_count :minus",
                    "ExpressionAttributeValues": {":minus": -1}}},
        {"Update": {"Key": task_key(scope, task_id), "UpdateExpression": "DELETE campaign_ids :c",
                    "ExpressionAttributeValues": {":c": {campaign_id}}}},
    ])


def get_link(scope: str, campaign_id: str, task_id: str) -> dict | None:
    return _get(**_link_key(scope, campaign_id, task_id), consistent=True)


def list_links(scope: str, campaign_id: str, limit: int, next_token: str | None) -> tuple[list[dict], str | None]:
    return _page(f"T#{scope}#CAMPAIGN#{campaign_id}", "TASK#", limit, next_token)


# --- progress and completion -------------------------------------------------------------------------------

def _progress_key(scope: str, user_id: str, task_id: str) -> dict[str, str]:
    return {"pk": f"T#{scope}#U#{user_id}", "sk": f"TASKPROG#{task_id}"}


def _marker_key(scope: str, user_id: str, task_id: str, event_id: str) -> dict[str, str]:
    return {"pk": f"T#{scope}#U#{user_id}", "sk": f"TASKEV#{task_id}#{event_id}"}


def _log_partition(scope: str, task_id: str, shard: int) -> str:
    return f"T#{scope}#TASK#{task_id}#LOG#{shard}"


def _log_key(scope: str, task_id: str, completion_id: str) -> dict[str, str]:
    shard = dynamo.shard_of(completion_id, TASK_SHARDS)
    return {"pk": _log_partition(scope, task_id, shard), "sk": f"LOG#{completion_id}"}


def _log_keys(scope: str, log: dict[str, Any]) -> dict[str, str]:
    return {**_log_key(scope, log["task_id"], log["completion_id"]),
            "gsi1pk": f"T#{scope}#U#{log['user_id']}#TASKLOG",
            "gsi1sk": f"TASK#{log['task_id']}#{log['completion_id']}"}


def _stats_key(scope: str, task_id: str, shard: int) -> dict[str, str]:
    return {"pk": f"T#{scope}#TASK#{task_id}#STATS#{shard}", "sk": "STATS"}


class Refused(ConditionFailed):
    """Progress was not counted: `item` is the progress item as it is, `repeat` says the event was counted
    before (its marker exists)."""

    def __init__(self, item: dict | None, repeat: bool):
        super().__init__(item)
        self.repeat = repeat


def _count_once(scope: str, task_id: str, user_id: str, event_id: str, expires: int, progress: dict) -> dict:
    """The progress update `progress` (an UpdateItem's fields) and the event's marker, in one transaction:
    the marker's `attribute_not_exists` counts the event once however often it comes, and keeps the progress
    item the same size however many events a period counts. A transaction answers no item, so the progress
    is read after it (consistently); raises Refused with the item as it is when either condition failed."""
    key = _progress_key(scope, user_id, task_id)
    marker = {**_marker_key(scope, user_id, task_id, event_id), "ttl": expires}
    try:
        _transact([{"Put": {"Item": marker, "ConditionExpression": "attribute_not_exists(pk)"}},
                   {"Update": {"Key": key, **progress, "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}}])
    except ConditionFailed as failed:
        repeat = failed.reasons[0] == "ConditionalCheckFailed"
        item = failed.item if failed.reasons[1] == "ConditionalCheckFailed" else None
        raise Refused(item or _get(**key, consistent=True), repeat) from failed
    return _strip(dynamo.table().get_item(Key=key, ConsistentRead=True)["Item"])


def add_progress(scope: str, task_id: str, user_id: str, *, period_key: str, event_id: str, amount: int,
                 max_count: int | None, expires: int, hold_at: int | None = None) -> dict:
    """Count one event towards the user's progress in `period_key`, at most once per event id (its marker
    lives until `expires`, epoch seconds), never after the period's completion nor past `max_count`, and never
    past `hold_at` (an `==` target reached but not yet completed: overtaking it would lose the completion).
    Returns the new item, or raises Refused (another period, a repeat, already complete)."""
    guard = ("attribute_not_exists(pk) OR (period_key = :p"
             " AND (attribute_not_exists(completed_period) OR completed_period <> :p)")
    values: dict[str, Any] = {":p": period_key, ":n": amount, ":t": task_id, ":u": user_id}
    if max_count is not None:
        guard += " AND (attribute_not_exists(completions) OR completions < :max)"
        values[":max"] = max_count
    if hold_at is not None:
        guard += " AND progress <> :hold"
        values[":hold"] = hold_at
    return _count_once(scope, task_id, user_id, event_id, expires, {
        "UpdateExpression": "SET period_key = :p, task_id = :t, user_id = :u ADD progress :n",
        "ConditionExpression": guard + ")", "ExpressionAttributeValues": values})


def start_period(scope: str, task_id: str, user_id: str, *, old_period: str, period_key: str, event_id: str,
                 amount: int, max_count: int | None, expires: int) -> dict:
    """Reset progress for a new period, guarded on the period the caller saw (a racing reset wins once)."""
    guard, values = "period_key = :old", {":old": old_period, ":p": period_key, ":n": amount}
    if max_count is not None:
        guard += " AND (attribute_not_exists(completions) OR completions < :max)"
        values[":max"] = max_count
    return _count_once(scope, task_id, user_id, event_id, expires, {
        "UpdateExpression": "SET period_key = :p, progress = :n", "ConditionExpression": guard,
        "ExpressionAttributeValues": values})


def get_progress(scope: str, task_id: str, user_id: str) -> dict | None:
    return _get(**_progress_key(scope, user_id, task_id), consistent=True)


def user_progress(scope: str, user_id: str) -> dict[str, dict]:
    items = _query_all(Key("pk").eq(f"T#{scope}#U#{user_id}") & Key("sk").begins_with("TASKPROG#"),
                       ConsistentRead=True)
    return {i["task_id"]: i for i in items}


_COMPARE = {">=": ">=", ">": ">", "==": "="}


def complete(scope: str, log: dict[str, Any], *, operator: str, target: int, seen_completions: int,
             outbox: list[dict]) -> None:
    """Complete the task for the user in `log['period']`, in one transaction:

    - the progress item: only if its period is this one, its progress meets the condition, the period is not
      complete yet and its completion count is still the one the caller read (so `max_count` and the
      unique-user count are exact under races);
    - the completion log (new id, never overwritten);
    - one of the task's stats shards: one more completion, and one more unique user on the user's first
      completion;
    - its `task.completed` event (`outbox`).
    Raises ConditionFailed with the progress item as DynamoDB saw it when another completion won."""
    seen = ("attribute_not_exists(completions)" if seen_completions == 0 else "completions = :seen")
    values: dict[str, Any] = {":p": log["period"], ":v": target, ":one": 1, ":cid": log["completion_id"],
                              ":e": log["event_id"], ":at": log["completed_at"]}
    if seen_completions:
        values[":seen"] = seen_completions
    _transact([
        {"Update": {
            "Key": _progress_key(scope, log["user_id"], log["task_id"]),
            "UpdateExpression": "SET completed_period = :p, completion_id = :cid, completed_by = :e,"
                                " completed_at = :at ADD completions :one",
            "ConditionExpression": f"period_key = :p AND progress {_COMPARE[operator]} :v AND"
                                   f" (attribute_not_exists(completed_period) OR completed_period <> :p) AND {seen}",
            "ExpressionAttributeValues": values, "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}},
        {"Put": {"Item": {**_log_keys(scope, log), **log}, "ConditionExpression": "attribute_not_exists(pk)"}},
        {"Update": {"Key": _stats_key(scope, log["task_id"], dynamo.shard_of(log["completion_id"], TASK_SHARDS)),
                    "UpdateExpression": "SET task_id = :t ADD total_completions :one, unique_users :first",
                    "ExpressionAttributeValues": {":t": log["task_id"], ":one": 1,
                                                  ":first": 1 if seen_completions == 0 else 0}}},
        *outbox,
    ])


def get_stats(scope: str, task_id: str) -> dict[str, int]:
    """The task's completion counts: the sum of its shards (one BatchGetItem)."""
    shards = _batch_get([_stats_key(scope, task_id, n) for n in range(TASK_SHARDS)])
    return {name: sum(int(shard.get(name, 0)) for shard in shards) for name in ("total_completions", "unique_users")}


def get_log(scope: str, task_id: str, completion_id: str) -> dict | None:
    return _get(**_log_key(scope, task_id, completion_id), consistent=True)


def list_logs(scope: str, *, task_id: str | None, user_id: str | None, limit: int,
              next_token: str | None) -> tuple[list[dict], str | None]:
    """By user (optionally of one task) on gsi1, else by task on the table; newest first."""
    if user_id:
        items, token = pagination.query_page(
            dynamo.table(), partition={"gsi1pk": f"T#{scope}#U#{user_id}#TASKLOG"}, index="gsi1",
            sort_prefix=("gsi1sk", f"TASK#{task_id}#" if task_id else "TASK#"), limit=limit,
            next_token=next_token, newest_first=True)
    else:  # the task's log shards, merged by completion id (time-ordered)
        items, token = pagination.merged_page(
            dynamo.table(), partitions=[{"pk": _log_partition(scope, task_id, n)} for n in range(TASK_SHARDS)],
            index=None, limit=limit, next_token=next_token, newest_first=True)
    return [_strip(i) for i in items], token


# --- the reward's frequency validator (grants per user per window) -------------------------------------------

def _frequency_keys(scope: str, user_id: str, reward_id: str, window: str, grant_id: str) -> tuple[dict, dict]:
    pk = f"T#{scope}#U#{user_id}"
    return ({"pk": pk, "sk": f"GRANTFREQ#{reward_id}#{window}"},
            {"pk": pk, "sk": f"GRANTFREQ#{reward_id}#{window}#{grant_id}"})


def _grant_is(scope: str, grant_id: str, status: str) -> dict:
    """A transaction's check on the grant (the rewards capability's item) being in `status`."""
    return {"ConditionCheck": {"Key": grant_key(scope, grant_id), "ConditionExpression": "#s = :s",
                               "ExpressionAttributeNames": {"#s": "status"},
                               "ExpressionAttributeValues": {":s": status}}}


def take_frequency(scope: str, user_id: str, reward_id: str, window: str, grant_id: str, limit: int) -> bool:
    """One of the user's `limit` grants of the reward in `window`, for this grant: a marker (a repeat for the same
    grant finds it and answers True) and the window's counter, conditional on staying within the limit and on
    the grant still being PENDING (no slot is taken once it has failed, so a release is final). Raises
    ConditionFailed when the grant has moved on."""
    counter, marker = _frequency_keys(scope, user_id, reward_id, window, grant_id)
    try:
        _transact([
            {"Put": {"Item": {**marker, "grant_id": grant_id}, "ConditionExpression": "attribute_not_exists(pk)"}},
            {"Update": {"Key": counter, "UpdateExpression": "ADD n :one",
                        "ConditionExpression": "attribute_not_exists(n) OR n < :limit",
                        "ExpressionAttributeValues": {":one": 1, ":limit": limit}}},
            _grant_is(scope, grant_id, "PENDING"),
        ])
        return True
    except ConditionFailed as exc:
        if exc.reasons[2] == "ConditionalCheckFailed":
            raise
        return exc.reasons[0] == "ConditionalCheckFailed"  # taken before by this very grant


def release_frequency(scope: str, user_id: str, reward_id: str, window: str, grant_id: str) -> None:
    """Give back the slot this grant took, once it is FAILED (a final state): the marker's deletion is the
    condition, so a slot it never took, or gave back already, moves nothing, and a grant that did not fail
    (a racing delivery distributed it) keeps its slot. Safe to repeat."""
    counter, marker = _frequency_keys(scope, user_id, reward_id, window, grant_id)
    try:
        _transact([
            {"Delete": {"Key": marker, "ConditionExpression": "attribute_exists(pk)"}},
            {"Update": {"Key": counter, "UpdateExpression": "ADD n :minus",
                        "ExpressionAttributeValues": {":minus": -1}}},
            _grant_is(scope, grant_id, "FAILED"),
        ])
    except ConditionFailed:
        pass  # never taken, released before, or the grant has not failed


# --- batch grants -------------------------------------------------------------------------------------------

def grant_batch_key(scope: str, batch_id: str) -> dict[str, str]:
    return {"pk": f"T#{scope}#GRANTBATCH#{batch_id}", "sk": "GRANTBATCH"}


def put_grant_batch(scope: str, batch: dict[str, Any]) -> dict | None:
    """The new batch; when one has this id already (a repeated idempotency key), writes nothing and answers it."""
    try:
        dynamo.table().put_item(Item={**grant_batch_key(scope, batch["batch_id"]), **batch},
                                ConditionExpression="attribute_not_exists(pk)",
                                ReturnValuesOnConditionCheckFailure="ALL_OLD")
    except ClientError as exc:
        if dynamo.is_condition_failure(exc):
            return _old_image(exc.response.get("Item")) or get_grant_batch(scope, batch["batch_id"])
        raise
    return None


def get_grant_batch(scope: str, batch_id: str) -> dict | None:
    return _get(**grant_batch_key(scope, batch_id), consistent=True)


def _set_batch_status(scope: str, batch_id: str, to: str, condition: str, values: dict) -> None:
    """A status move guarded by `condition`; a refusal means another writer decided already."""
    try:
        dynamo.table().update_item(
            Key=grant_batch_key(scope, batch_id), UpdateExpression="SET #s = :to",
            ConditionExpression=condition, ExpressionAttributeNames={"#s": "status", "#total": "total"},
            ExpressionAttributeValues={":to": to, **values})
    except ClientError as exc:
        if not dynamo.is_condition_failure(exc):
            raise


def grant_batch_queued(scope: str, batch_id: str) -> None:
    """QUEUING → PROCESSING once every chunk is on the queue (a batch done meanwhile stays DONE)."""
    _set_batch_status(scope, batch_id, "PROCESSING", "#s = :queuing AND done < #total", {":queuing": "QUEUING"})


def count_chunk(scope: str, batch_id: str, offset: int, reasons: list[str | None], moment: str) -> None:
    """Add a finished chunk's outcomes (None: granted, else the failure's reason) to the batch's counters once:
    the batch keeps the set of counted chunks, and the update is conditional on this one not being in it. Then
    the batch is DONE when every user is counted."""
    failures: dict[str, int] = {}
    for reason in reasons:
        if reason is not None:
            failures[reason] = failures.get(reason, 0) + 1
    granted = len(reasons) - sum(failures.values())
    sets = ["updated_at = :now"] + [f"failed_reasons.#r{i} = if_not_exists(failed_reasons.#r{i}, :zero) + :n{i}"
                                    for i in range(len(failures))]
    names = {f"#r{i}": reason for i, reason in enumerate(failures)}
    values = {":now": moment, ":g": granted, ":f": len(reasons) - granted, ":d": len(reasons),
              ":chunk": {str(offset)}, ":offset": str(offset),
              **({":zero": 0} if failures else {}), **{f":n{i}": n for i, n in enumerate(failures.values())}}
    try:
        dynamo.table().update_item(
            Key=grant_batch_key(scope, batch_id), ConditionExpression="NOT contains(chunks, :offset)",
            UpdateExpression=f"SET {', '.join(sets)} ADD granted :g, failed :f, done :d, chunks :chunk",
            ExpressionAttributeValues=values, **({"ExpressionAttributeNames": names} if names else {}))
    except ClientError as exc:
        if not dynamo.is_condition_failure(exc):
            raise  # else: counted by an earlier delivery, which may have died before closing the batch
    _set_batch_status(scope, batch_id, "DONE", "done = #total AND #s <> :to", {})
