"""DynamoDB access for CPS. Keys (see docs/data-model.md):

    settings           pk T#{s}#CPS                        sk SETTINGS
    affiliate          pk T#{s}#AFF#{user}                 sk PROFILE      (inviter, upline, pid, invite code,
                                                                        status FROZEN / absent = active)
    pid → affiliate    pk T#{s}#CPSPID#{pid}               sk PID          (user, upline: one read per order)
    downline relation  pk T#{s}#AFF#{ancestor}             sk DOWN#{level:02d}#{user}
    order              pk T#{s}#CPSORDER#{platform}#{id}   sk ORDER        gsi1 T#{s}#CPSDAY#{date} / {platform}#{id}
    ledger entry       pk T#{s}#AFF#{user}                 sk CPSL#{recorded_at}#{platform}#{id}#{version}#{kind}
                       gsi1 T#{s}#AFF#{user}#CPSL#{status} / {recorded_at}#{platform}#{id}#{version}#{kind}

`{s}` is the scope of the caller, `{tenant_id}#A#{app_id}` (marketing.core.identity.scope_of): every item
belongs to one app of one tenant.
"""

from __future__ import annotations

from typing import Any

from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

from marketing.core import dynamo, pagination


class AlreadyRegistered(Exception):
    """The user is an affiliate already (a concurrent registration may have won)."""


class PidTaken(Exception):
    """The random pid belongs to someone else: draw another."""


class InviterMissing(Exception):
    """The inviter is not an affiliate."""


class StaleOrder(Exception):
    """The order, or the status of an affiliate it pays, changed since it was read: read again, merge again."""


FROZEN, ACTIVE = "FROZEN", "ACTIVE"
# An affiliate that is not frozen (never frozen: no status attribute).
_NOT_FROZEN = "(attribute_not_exists(#st) OR #st <> :frozen)"


_strip = dynamo.entity


def _aff_pk(scope: str, user_id: str) -> str:
    return f"T#{scope}#AFF#{user_id}"


def _pid_pk(scope: str, pid: str) -> str:
    return f"T#{scope}#CPSPID#{pid}"


def _order_pk(scope: str, platform: str, order_id: str) -> str:
    return f"T#{scope}#CPSORDER#{platform}#{order_id}"


def _get(pk: str, sk: str, *, consistent: bool = False) -> dict | None:
    return _strip(dynamo.table().get_item(Key={"pk": pk, "sk": sk}, ConsistentRead=consistent).get("Item"))


# --- settings -------------------------------------------------------------------------------------------

def _settings_key(scope: str) -> dict[str, str]:
    return {"pk": f"T#{scope}#CPS", "sk": "SETTINGS"}


def get_settings(scope: str) -> dict | None:
    return _get(**_settings_key(scope))


def put_settings(scope: str, settings: dict[str, Any]) -> None:
    dynamo.table().put_item(Item={**_settings_key(scope), **settings})


# --- affiliates -----------------------------------------------------------------------------------------

def get_affiliate(scope: str, user_id: str, *, consistent: bool = False) -> dict | None:
    return _get(_aff_pk(scope, user_id), "PROFILE", consistent=consistent)


def get_settings_and_pid_owner(scope: str, pid: str) -> tuple[dict | None, dict | None]:
    """The settings and the pid's owner (user, upline), in one BatchGetItem: what fixing the shares
    of a paid order needs."""
    settings_key, pid_key = _settings_key(scope), {"pk": _pid_pk(scope, pid), "sk": "PID"}
    found = {item["pk"]: _strip(item) for item in dynamo.batch_get([settings_key, pid_key])}
    return found.get(settings_key["pk"]), found.get(pid_key["pk"])


def register(scope: str, profile: dict[str, Any]) -> None:
    """The affiliate, its pid and one downline relation per upline level, in one transaction; the inviter
    must be an affiliate at that moment. The profile's `upline` lists levels 1..N (inviter first)."""
    user = profile["user_id"]
    actions: list[dict[str, Any]] = [
        {"Put": {"Item": {"pk": _aff_pk(scope, user), "sk": "PROFILE", **profile},
                 "ConditionExpression": "attribute_not_exists(pk)"}},
        {"Put": {"Item": {"pk": _pid_pk(scope, profile["pid"]), "sk": "PID", "user_id": user,
                          "upline": profile["upline"]},
                 "ConditionExpression": "attribute_not_exists(pk)"}},
    ]
    if profile.get("inviter_id"):  # an affiliate, and not frozen, at this moment
        actions.append({"ConditionCheck": {"Key": {"pk": _aff_pk(scope, profile["inviter_id"]), "sk": "PROFILE"},
                                           "ConditionExpression": f"attribute_exists(pk) AND {_NOT_FROZEN}",
                                           "ExpressionAttributeNames": {"#st": "status"},
                                           "ExpressionAttributeValues": {":frozen": FROZEN}}})
    for level, ancestor in enumerate(profile["upline"], start=1):
        actions.append({"Put": {"Item": {"pk": _aff_pk(scope, ancestor), "sk": f"DOWN#{level:02d}#{user}",
                                         "user_id": user, "level": level, "created_at": profile["created_at"]},
                                "ConditionExpression": "attribute_not_exists(pk)"}})
    try:
        dynamo.transact_write(actions)
    except ClientError as exc:
        reasons = dynamo.cancellation_reasons(exc)
        if reasons[0] == "ConditionalCheckFailed":
            raise AlreadyRegistered from exc
        if reasons[1] == "ConditionalCheckFailed":
            raise PidTaken from exc
        if len(reasons) > 2 and profile.get("inviter_id") and reasons[2] == "ConditionalCheckFailed":
            raise InviterMissing from exc
        raise


def set_status(scope: str, user_id: str, status: str, reason: str, at: str,
               outbox: list[dict]) -> tuple[dict | None, bool]:
    """Freeze or unfreeze with its events, only if that changes the status: answers (the profile, changed).
    Every change bumps `status_version`."""
    condition = f"attribute_exists(pk) AND {_NOT_FROZEN}" if status == FROZEN else "#st = :frozen"
    update = {"Key": {"pk": _aff_pk(scope, user_id), "sk": "PROFILE"},
              "UpdateExpression": "SET #st = :s, status_reason = :r, status_changed_at = :at, "
                                  "status_version = if_not_exists(status_version, :zero) + :one",
              "ConditionExpression": condition, "ExpressionAttributeNames": {"#st": "status"},
              "ExpressionAttributeValues": {":s": status, ":r": reason, ":at": at, ":frozen": FROZEN, ":zero": 0,
                                            ":one": 1}}
    try:
        dynamo.transact_write([{"Update": update}, *outbox])
    except ClientError as exc:
        if dynamo.cancellation_reasons(exc)[0] != "ConditionalCheckFailed":
            raise
        return get_affiliate(scope, user_id, consistent=True), False  # unknown (None), or already so
    return get_affiliate(scope, user_id, consistent=True), True


def statuses(scope: str, user_ids: list[str]) -> dict[str, str]:
    """The status of each affiliate (consistent reads: an order's transaction checks what was read)."""
    keys = [{"pk": _aff_pk(scope, u), "sk": "PROFILE"} for u in dict.fromkeys(user_ids)]
    found = {item["pk"]: item.get("status", ACTIVE) for item in dynamo.batch_get(keys, consistent=True)}
    return {u: found.get(_aff_pk(scope, u), ACTIVE) for u in user_ids}


def list_downline(scope: str, user_id: str, level: int, limit: int,
                  next_token: str | None) -> tuple[list[dict], str | None]:
    items, token = pagination.query_page(
        dynamo.table(), partition={"pk": _aff_pk(scope, user_id)}, sort_prefix=("sk", f"DOWN#{level:02d}#"),
        limit=limit, next_token=next_token)
    return [_strip(i) for i in items], token


# --- orders and the ledger -------------------------------------------------------------------------------

def get_order(scope: str, platform: str, order_id: str) -> dict | None:
    return _get(_order_pk(scope, platform, order_id), "ORDER", consistent=True)


def save_order(scope: str, order: dict[str, Any], expected_version: int, entries: list[dict[str, Any]],
               outbox: list[dict], statuses_read: dict[str, str] | None = None) -> None:
    """The order at `expected_version + 1`, the ledger entries and the events of this change: all or nothing,
    and only if nobody saved the order since it was read (optimistic lock on `version`) and every affiliate of
    `statuses_read` still has the status read (a freeze racing a payment: one of them goes first)."""
    platform, order_id, version = order["platform"], order["order_id"], order["version"]
    condition = {"ConditionExpression": "attribute_not_exists(pk)"} if expected_version == 0 else {
        "ConditionExpression": "#v = :v", "ExpressionAttributeNames": {"#v": "version"},
        "ExpressionAttributeValues": {":v": expected_version}}
    item = {"pk": _order_pk(scope, platform, order_id), "sk": "ORDER",
            "gsi1pk": f"T#{scope}#CPSDAY#{order['day']}", "gsi1sk": f"{platform}#{order_id}", **order}
    actions: list[dict[str, Any]] = [{"Put": {"Item": item, **condition}}]
    for entry in entries:
        suffix = f"{entry['recorded_at']}#{platform}#{order_id}#{version}#{entry['kind']}"
        actions.append({"Put": {"Item": {
            "pk": _aff_pk(scope, entry["user_id"]), "sk": f"CPSL#{suffix}",
            "gsi1pk": f"{_aff_pk(scope, entry['user_id'])}#CPSL#{entry['status']}", "gsi1sk": suffix,
            **{k: v for k, v in entry.items() if v is not None}},
            "ConditionExpression": "attribute_not_exists(pk)"}})
    actions += outbox
    checks = len(statuses_read or {})  # last, so their positions count from the end
    for user, status in (statuses_read or {}).items():
        actions.append({"ConditionCheck": {
            "Key": {"pk": _aff_pk(scope, user), "sk": "PROFILE"},
            "ConditionExpression": "#st = :frozen" if status == FROZEN else _NOT_FROZEN,
            "ExpressionAttributeNames": {"#st": "status"}, "ExpressionAttributeValues": {":frozen": FROZEN}}})
    try:
        dynamo.transact_write(actions)
    except ClientError as exc:
        reasons = dynamo.cancellation_reasons(exc)
        stale = ("ConditionalCheckFailed", "TransactionConflict")
        if reasons[0] in stale or any(r in stale for r in reasons[len(reasons) - checks:] if checks):
            raise StaleOrder from exc
        raise


def list_entries(scope: str, user_id: str, status: str | None, limit: int,
                 next_token: str | None) -> tuple[list[dict], str | None]:
    if status:
        items, token = pagination.query_page(
            dynamo.table(), partition={"gsi1pk": f"{_aff_pk(scope, user_id)}#CPSL#{status}"}, index="gsi1",
            limit=limit, next_token=next_token, newest_first=True)
    else:
        items, token = pagination.query_page(
            dynamo.table(), partition={"pk": _aff_pk(scope, user_id)}, sort_prefix=("sk", "CPSL#"),
            limit=limit, next_token=next_token, newest_first=True)
    return [_strip(i) for i in items], token


def _query_all(**kwargs: Any) -> list[dict]:
    return [_strip(i) for i in dynamo.query_all(**kwargs)]


def pending_orders(scope: str, user_id: str) -> list[tuple[str, str]]:
    """The orders (platform, id) the affiliate accrued on: where a pending share may be."""
    entries = _query_all(IndexName="gsi1", KeyConditionExpression=Key("gsi1pk").eq(
        f"{_aff_pk(scope, user_id)}#CPSL#pending"))
    return list(dict.fromkeys((e["platform"], e["order_id"]) for e in entries))


def all_entries(scope: str, user_id: str) -> list[dict]:
    return _query_all(KeyConditionExpression=Key("pk").eq(_aff_pk(scope, user_id)) & Key("sk").begins_with("CPSL#"))


def orders_of_day(scope: str, day: str, platform: str | None = None) -> list[dict]:
    """A day's orders, of one platform if given: its sort-key prefix (platforms hold no `#`), so DynamoDB
    reads only that platform's orders and every page's `LastEvaluatedKey` stays inside the prefix."""
    key = Key("gsi1pk").eq(f"T#{scope}#CPSDAY#{day}")
    if platform:
        key = key & Key("gsi1sk").begins_with(f"{platform}#")
    return _query_all(IndexName="gsi1", KeyConditionExpression=key)
