"""DynamoDB access for tracking. Keys (see docs/data-model.md):

    user's promo code      pk T#{s}#U#{user}      sk PROMO#{track_type}
    code → owner           pk T#{s}#PROMO#{code}  sk PROMO
    arrival (track record) pk T#{s}#U#{user}      sk ARRIVAL#{type}#ONCE | ARRIVAL#{type}#{created_at}#{id}
                           gsi1pk T#{s}#REF#{referrer}  gsi1sk ARRIVAL#{type}#{created_at}#{id}
    referrer's counts      pk T#{s}#REF#{referrer} sk SUMMARY   (n_{type} counters)
    configured track type  pk T#{s}#CONFIG        sk TRACK_TYPE#{type}

`{s}` is the scope of the caller, `{tenant_id}#A#{app_id}` (marketing.core.identity.scope_of): every item
belongs to one app of one tenant.
"""

from __future__ import annotations

from typing import Any

from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

from marketing.core import dynamo, pagination


class PromoExists(Exception):
    """The user already has a promo code for this track type (a concurrent first call won)."""


class CodeTaken(Exception):
    """The random code is someone else's: draw another."""


class TrackTypeExists(Exception):
    """The app configured this track type already."""


class AlreadyRecorded(Exception):
    """A once-per-user arrival exists already; the first attribution stands."""


def _user_pk(scope: str, user_id: str) -> str:
    return f"T#{scope}#U#{user_id}"


def _code_pk(scope: str, code: str) -> str:
    return f"T#{scope}#PROMO#{code}"


def _referrer_pk(scope: str, referrer: str) -> str:
    return f"T#{scope}#REF#{referrer}"


_strip = dynamo.entity


def get_promo(scope: str, user_id: str, track_type: int, *, consistent: bool = False) -> dict | None:
    answer = dynamo.table().get_item(
        Key={"pk": _user_pk(scope, user_id), "sk": f"PROMO#{track_type}"}, ConsistentRead=consistent)
    return _strip(answer.get("Item"))


def create_promo(scope: str, promo: dict[str, Any]) -> None:
    """The user's code and the code's uniqueness item, in one transaction: both or neither."""
    owner = {"user_id": promo["user_id"], "track_type": promo["track_type"]}
    try:
        dynamo.transact_write([
            {"Put": {"Item": {"pk": _user_pk(scope, promo["user_id"]), "sk": f"PROMO#{promo['track_type']}",
                              **promo},
                     "ConditionExpression": "attribute_not_exists(pk)"}},
            {"Put": {"Item": {"pk": _code_pk(scope, promo["promcode"]), "sk": "PROMO", **owner},
                     "ConditionExpression": "attribute_not_exists(pk)"}},
        ])
    except ClientError as exc:
        reasons = dynamo.cancellation_reasons(exc)
        if reasons[0] == "ConditionalCheckFailed":
            raise PromoExists from exc
        if reasons[1] == "ConditionalCheckFailed":
            raise CodeTaken from exc
        raise


def get_code_owner(scope: str, code: str) -> dict | None:
    answer = dynamo.table().get_item(Key={"pk": _code_pk(scope, code), "sk": "PROMO"})
    return _strip(answer.get("Item"))


def _arrival_sk(record: dict[str, Any], once: bool) -> str:
    head = f"ARRIVAL#{record['track_type']}#"
    return head + ("ONCE" if once else f"{record['created_at']}#{record['id']}")


def put_arrival(scope: str, record: dict[str, Any], *, once: bool, outbox: list[dict]) -> None:
    """The arrival, its referrer's counter and its events (`outbox`) move together; a once-per-user arrival
    only if none exists."""
    item = {
        "pk": _user_pk(scope, record["user_id"]),
        "sk": _arrival_sk(record, once),
        "gsi1pk": _referrer_pk(scope, record["referrer"]),
        "gsi1sk": f"ARRIVAL#{record['track_type']}#{record['created_at']}#{record['id']}",
        **{k: v for k, v in record.items() if v is not None},
    }
    put: dict[str, Any] = {"Item": item}
    if once:
        put["ConditionExpression"] = "attribute_not_exists(pk)"
    try:
        dynamo.transact_write([
            {"Put": put},
            {"Update": {"Key": {"pk": _referrer_pk(scope, record["referrer"]), "sk": "SUMMARY"},
                        "UpdateExpression": "ADD #n :one",
                        "ExpressionAttributeNames": {"#n": f"n_{record['track_type']}"},
                        "ExpressionAttributeValues": {":one": 1}}},
            *outbox,
        ])
    except ClientError as exc:
        if dynamo.cancellation_reasons(exc)[0] == "ConditionalCheckFailed":
            raise AlreadyRecorded from exc
        raise


def get_once_arrival(scope: str, user_id: str, track_type: int) -> dict | None:
    answer = dynamo.table().get_item(
        Key={"pk": _user_pk(scope, user_id), "sk": f"ARRIVAL#{track_type}#ONCE"}, ConsistentRead=True)
    return _strip(answer.get("Item"))


def list_arrivals(scope: str, referrer: str, track_type: int | None, limit: int,
                  next_token: str | None) -> tuple[list[dict], str | None]:
    items, token = pagination.query_page(
        dynamo.table(), partition={"gsi1pk": _referrer_pk(scope, referrer)}, index="gsi1",
        sort_prefix=("gsi1sk", f"ARRIVAL#{track_type}#" if track_type else "ARRIVAL#"),
        limit=limit, next_token=next_token, newest_first=True)
    return [_strip(i) for i in items], token


def get_counts(scope: str, referrer: str) -> dict[str, int]:
    item = dynamo.table().get_item(Key={"pk": _referrer_pk(scope, referrer), "sk": "SUMMARY"}).get("Item") or {}
    return {k[2:]: v for k, v in dynamo.plain(item).items() if k.startswith("n_")}


def get_track_type(scope: str, track_type: int) -> dict | None:
    answer = dynamo.table().get_item(Key={"pk": f"T#{scope}#CONFIG", "sk": f"TRACK_TYPE#{track_type:03d}"})
    return _strip(answer.get("Item"))


def create_track_type(scope: str, config: dict[str, Any]) -> None:
    """Track types are fixed once created: changing `once_per_user` later would rewrite history."""
    try:
        dynamo.table().put_item(
            Item={"pk": f"T#{scope}#CONFIG", "sk": f"TRACK_TYPE#{config['track_type']:03d}", **config},
            ConditionExpression="attribute_not_exists(pk)")
    except ClientError as exc:
        if dynamo.is_condition_failure(exc):
            raise TrackTypeExists from exc
        raise


def list_track_types(scope: str) -> list[dict]:
    answer = dynamo.table().query(
        KeyConditionExpression=Key("pk").eq(f"T#{scope}#CONFIG") & Key("sk").begins_with("TRACK_TYPE#"))
    return [_strip(i) for i in answer.get("Items", [])]
