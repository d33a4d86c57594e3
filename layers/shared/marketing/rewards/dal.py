"""DynamoDB access for rewards. Keys (see docs/data-model.md):

    reward               pk T#{s}#REWARD#{rid}            sk REWARD      gsi1 T#{s}#REWARDS / {created_at}#{rid}
    stock shard i        pk T#{s}#REWARD#{rid}#STOCK#{i}  sk STOCK       available (limited only), reserved, issued,
                                                                          version (the reward's, moved with it)
    user's allowance     pk T#{s}#REWARD#{rid}#U#{user}   sk LIMIT       taken
    reservation          pk T#{s}#RES#{id}                sk RES         gsi1 T#{s}#REWARD#{rid}#RES#{shard} /
                                                                               {created_at}#{id}
                                                                          gsi2 T#{s}#REWARD#{rid}#U#{user}#RES / same
    expiry pointer       pk SWEEP#RES#{n}                 sk {expires_at}#{s}#{id}   (pending reservations only;
                                                                          holds what their release needs)
    grant                pk T#{s}#GRANT#{gid}             sk GRANT       gsi1 T#{s}#GRANTS#{n} / {created_at}#{gid}
                                                                          gsi2 T#{s}#U#{user}#GRANTS / same
    grant's code         pk T#{s}#GRANT#{gid}             sk CODE
    code key + sequence  pk T#{s}#CODES                   sk KEY
    batch                pk T#{s}#BATCH#{bid}             sk BATCH       gsi1 T#{s}#REWARD#{rid}#BATCHES / ...
    code                 pk T#{s}#CODE#{code}             sk CODE        gsi1 T#{s}#BATCH#{bid}#CODES / {seq}
    failed redemptions   pk T#{s}#U#{user}#REDEEM         sk FAIL#{window}

`{s}` is the scope of the caller, `{tenant_id}#A#{app_id}` (marketing.core.identity.scope_of): every item
belongs to one app of one tenant.

Hot keys (docs/data-model.md, "Hot keys and limits"): reserve, redeem, confirm, cancel and the sweeper touch
only the stock shard, the user's allowance, the code, the reservation and its expiry pointer, never the reward
item (its version lives on every shard too). The expiry pointers spread over `SWEEP_PARTITIONS` partitions,
reservations of a reward over one index partition per stock shard, and the tenant's grants over
`GRANT_INDEX_SHARDS` index partitions, merged on read. A user's own listings read that user's gsi2 partition.
"""

from __future__ import annotations

import os
import secrets
import zlib
from collections.abc import Iterable
from typing import Any

from boto3.dynamodb.conditions import Attr, Key
from botocore.exceptions import ClientError

from marketing.core import dynamo, pagination
from marketing.core.errors import Conflict

# Enough expiry-pointer partitions for 10,000 reservations/s: each reservation puts and later deletes its
# pointer in transactions (2 write units each), about 40,000 units/s over partitions of 1,000. Only ever raise
# it: a reservation keeps its partition, and the sweeper reads partitions 0..n-1.
DEFAULT_SWEEP_PARTITIONS = 64
# The tenant grant index, write-sharded: 16 partitions take 16,000 grants/s, merged on read. Fixed: the
# listing reads exactly these partitions.
GRANT_INDEX_SHARDS = 16
# A reservation's fields its release needs: its expiry pointer carries them, so the sweeper never reads it.
RELEASE_FIELDS = ("reservation_id", "reward_id", "user_id", "shard", "quantity", "limited", "counted", "expires_at",
                  "sweep_partition", "parts")


def sweep_partitions() -> int:
    return int(os.environ.get("SWEEP_PARTITIONS", DEFAULT_SWEEP_PARTITIONS))


class ConditionFailed(Exception):
    """A conditional write or transaction was refused; `reasons` has one code per action (transactions)."""

    def __init__(self, reasons: list[str] | None = None, old: list[dict | None] | None = None):
        super().__init__(reasons)
        self.reasons = reasons or ["ConditionalCheckFailed"]
        self.old = old or []  # per action, the item as it was where the action asked for it (ALL_OLD)

    def failed(self, position: int) -> bool:
        return len(self.reasons) > position and self.reasons[position] == "ConditionalCheckFailed"

    def moved(self, position: int, version: int) -> bool:
        """The stock shard at `position` refused for the reward's version, not for its stock."""
        old = self.old[position] if len(self.old) > position else None
        return old is None or old.get("version", {}).get("N") != str(version)


# --- keys ---
def reward_key(t: str, rid: str) -> dict:
    return {"pk": f"T#{t}#REWARD#{rid}", "sk": "REWARD"}


def shard_key(t: str, rid: str, shard: int) -> dict:
    return {"pk": f"T#{t}#REWARD#{rid}#STOCK#{shard}", "sk": "STOCK"}


def allowance_key(t: str, rid: str, user: str) -> dict:
    return {"pk": f"T#{t}#REWARD#{rid}#U#{user}", "sk": "LIMIT"}


def reservation_key(t: str, res_id: str) -> dict:
    return {"pk": f"T#{t}#RES#{res_id}", "sk": "RES"}


def sweep_partition(res_id: str) -> int:
    return hash_of(res_id) % sweep_partitions()


def sweep_key(t: str, r: dict) -> dict:
    """A reservation's expiry pointer, in the partition the reservation recorded when it was made."""
    partition = r.get("sweep_partition")
    partition = sweep_partition(r["reservation_id"]) if partition is None else partition
    return {"pk": f"SWEEP#RES#{partition}", "sk": f"{r['expires_at']}#{t}#{r['reservation_id']}"}


def grants_partition(t: str, shard: int) -> str:
    return f"T#{t}#GRANTS#{shard}"


def user_grants_partition(t: str, user: str) -> str:
    return f"T#{t}#U#{user}#GRANTS"


def reservations_partition(t: str, rid: str, shard: int) -> str:
    return f"T#{t}#REWARD#{rid}#RES#{shard}"


def user_reservations_partition(t: str, rid: str, user: str) -> str:
    return f"T#{t}#REWARD#{rid}#U#{user}#RES"


def grant_key(t: str, gid: str, sk: str = "GRANT") -> dict:
    return {"pk": f"T#{t}#GRANT#{gid}", "sk": sk}


def code_key(t: str, code: str) -> dict:
    return {"pk": f"T#{t}#CODE#{code}", "sk": "CODE"}


def batch_key(t: str, bid: str, sk: str = "BATCH") -> dict:
    return {"pk": f"T#{t}#BATCH#{bid}", "sk": sk}


def guard_key(t: str, user: str, window: int) -> dict:
    return {"pk": f"T#{t}#U#{user}#REDEEM", "sk": f"FAIL#{window}"}


def hash_of(text: str) -> int:
    return zlib.crc32(text.encode())


strip = dynamo.entity


def _present(data: dict[str, Any]) -> dict[str, Any]:
    """DynamoDB items hold no nulls: an absent attribute is null, and conditions test absence."""
    return {k: v for k, v in data.items() if v is not None}


def transact(actions: list[dict]) -> None:
    """A transaction (core retries conflicts and throttling); a refused condition raises ConditionFailed with
    the reasons. Still busy after the retries is a 409 to try again, never a wrong answer about a condition."""
    try:
        dynamo.transact_write(actions)
    except ClientError as exc:
        reasons = dynamo.cancellation_reasons(exc)
        if "ConditionalCheckFailed" not in reasons:
            raise Conflict("the reward is busy; try again", code="BUSY") from exc
        old = [r.get("Item") for r in exc.response.get("CancellationReasons", [])]
        raise ConditionFailed(reasons, old) from exc


def _get(key: dict, consistent: bool = True) -> dict | None:
    return dynamo.table().get_item(Key=key, ConsistentRead=consistent).get("Item")


def batch_get(keys: list[dict]) -> list[dict]:
    return dynamo.batch_get(keys, consistent=True)


# --- rewards and stock ---
def _shard_shares(total: int | None, shards: int) -> list[int | None]:
    if total is None:
        return [None] * shards
    base, extra = divmod(total, shards)
    return [base + (1 if i < extra else 0) for i in range(shards)]


def create_reward(t: str, reward: dict[str, Any]) -> list[dict]:
    """The reward and its stock shards, all or nothing; answers the shards as written."""
    rid = reward["reward_id"]
    shards = [_present({"available": share, "reserved": 0, "issued": 0, "version": reward["version"]})
              for share in _shard_shares(reward.get("total_stock"), reward["shards"])]
    actions: list[dict] = [{"Put": {
        "Item": {**reward_key(t, rid), "gsi1pk": f"T#{t}#REWARDS", "gsi1sk": f"{reward['created_at']}#{rid}",
                 **_present(reward)},
        "ConditionExpression": "attribute_not_exists(pk)"}}]
    actions += [{"Put": {"Item": {**shard_key(t, rid, i), **shard}}} for i, shard in enumerate(shards)]
    transact(actions)
    return shards


def get_reward(t: str, rid: str) -> dict | None:
    """A live reward (soft-deleted ones are None)."""
    item = strip(_get(reward_key(t, rid)))
    return None if item is None or item.get("deleted_at") else item


def get_shards(t: str, rewards: Iterable[dict]) -> dict[str, list[dict]]:
    """Stock shards of each reward, by reward id, in shard order."""
    rewards = list(rewards)
    keys = [shard_key(t, r["reward_id"], i) for r in rewards for i in range(r["shards"])]
    by_pk = {item["pk"]: dynamo.plain(item) for item in batch_get(keys)}
    return {r["reward_id"]: [by_pk.get(shard_key(t, r["reward_id"], i)["pk"], {}) for i in range(r["shards"])]
            for r in rewards}


def list_rewards(t: str, limit: int, next_token: str | None) -> tuple[list[dict], str | None]:
    items, token = pagination.query_page(dynamo.table(), partition={"gsi1pk": f"T#{t}#REWARDS"}, index="gsi1",
                                         limit=limit, next_token=next_token, newest_first=True)
    return [strip(i) for i in items], token


def _new_version(t: str, reward: dict, update: dict[str, Any]) -> None:
    """Change the live reward and move its version, on the reward and on every stock shard, in one
    transaction: the shards' version is what reservations and redemptions check, so they never touch the
    reward item itself (one item in every transaction would serialize them all)."""
    rid = reward["reward_id"]
    actions: list[dict] = [{"Update": {
        "Key": reward_key(t, rid), **update,
        "ConditionExpression": "version = :seen AND attribute_not_exists(deleted_at)",
        "ExpressionAttributeValues": {**update.get("ExpressionAttributeValues", {}), ":seen": reward["version"],
                                      ":one": 1}}}]
    actions += [{"Update": {"Key": shard_key(t, rid, i), "UpdateExpression": "ADD version :one",
                            "ConditionExpression": "attribute_exists(pk)", "ExpressionAttributeValues": {":one": 1}}}
                for i in range(reward["shards"])]
    transact(actions)


def update_reward(t: str, reward: dict, fields: dict[str, Any], updated_at: str) -> dict:
    """Conditional on the version read (`reward`): a concurrent edit or delete is a ConditionFailed."""
    expression, names, values = dynamo.update_expression(fields, extra_set=("updated_at = :now",),
                                                         extra="ADD version :one")
    _new_version(t, reward, {"UpdateExpression": expression,
                             "ExpressionAttributeValues": {**values, ":now": updated_at},
                             **({"ExpressionAttributeNames": names} if names else {})})
    changed = {**reward, **fields, "updated_at": updated_at, "version": reward["version"] + 1}
    return {k: v for k, v in changed.items() if v is not None}


def delete_reward(t: str, reward: dict, deleted_at: str) -> None:
    """Soft delete: out of listings, refused by every new reservation or redemption (the version moves)."""
    _new_version(t, reward, {"UpdateExpression": "SET deleted_at = :now ADD version :one REMOVE gsi1pk, gsi1sk",
                             "ExpressionAttributeValues": {":now": deleted_at}})


def change_stock(t: str, rid: str, per_shard: dict[int, int]) -> None:
    """Add `per_shard[i]` (negative reduces) to shard i's available stock and to the reward's total, in one
    transaction. A reduction is conditional on the shard keeping `available >= 0`: the stock never drops
    below what is reserved or issued."""
    delta = sum(per_shard.values())
    actions: list[dict] = [{"Update": {
        "Key": reward_key(t, rid), "UpdateExpression": "ADD total_stock :d",
        "ConditionExpression": "attribute_exists(total_stock) AND attribute_not_exists(deleted_at)",
        "ExpressionAttributeValues": {":d": delta}}}]
    for shard, change in per_shard.items():
        update: dict[str, Any] = {"Key": shard_key(t, rid, shard), "UpdateExpression": "ADD available :d",
                                  "ExpressionAttributeValues": {":d": change}}
        if change < 0:
            update["ConditionExpression"] = "available >= :need"
            update["ExpressionAttributeValues"][":need"] = -change
        actions.append({"Update": update})
    transact(actions)


# --- the stock and allowance actions every transaction shares ---
def take_stock(t: str, rid: str, shard: int, quantity: int, *, limited: bool, into: str, version: int) -> dict:
    """Move `quantity` out of shard's available stock into `into` (reserved | issued), while the reward is
    still the `version` whose limit and stock mode the transaction relies on (the shard carries it). A refusal
    returns the shard as it was, which tells a moved version (ConditionFailed.moved) from an empty shard."""
    if limited:
        return {"Update": {"Key": shard_key(t, rid, shard),
                           "UpdateExpression": f"SET available = available - :q ADD {into} :q",
                           "ConditionExpression": "available >= :q AND version = :v",
                           "ExpressionAttributeValues": {":q": quantity, ":v": version},
                           "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}}
    return {"Update": {"Key": shard_key(t, rid, shard), "UpdateExpression": f"ADD {into} :q",
                       "ConditionExpression": "attribute_exists(pk) AND attribute_not_exists(available)"
                                              " AND version = :v",
                       "ExpressionAttributeValues": {":q": quantity, ":v": version},
                       "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}}


def version_unchanged(t: str, rid: str, shard: int, version: int) -> dict:
    """The reward is still `version`, checked on one of its stock shards (each carries it), never the reward item."""
    return {"ConditionCheck": {"Key": shard_key(t, rid, shard), "ConditionExpression": "version = :v",
                               "ExpressionAttributeValues": {":v": version},
                               "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}}


def return_stock(t: str, rid: str, shard: int, quantity: int, *, limited: bool, out_of: str) -> dict:
    expression = f"ADD {out_of} :neg" + (", available :q" if limited else "")
    return {"Update": {"Key": shard_key(t, rid, shard), "UpdateExpression": expression,
                       "ExpressionAttributeValues": {":neg": -quantity, **({":q": quantity} if limited else {})}}}


def move_stock(t: str, rid: str, shard: int, quantity: int) -> dict:
    """reserved → issued (a confirmation)."""
    return {"Update": {"Key": shard_key(t, rid, shard), "UpdateExpression": "ADD reserved :neg, issued :q",
                       "ExpressionAttributeValues": {":neg": -quantity, ":q": quantity}}}


def take_allowance(t: str, rid: str, user: str, quantity: int, limit: int) -> dict:
    return {"Update": {"Key": allowance_key(t, rid, user), "UpdateExpression": "ADD taken :q",
                       "ConditionExpression": "attribute_not_exists(taken) OR taken <= :max",
                       "ExpressionAttributeValues": {":q": quantity, ":max": limit - quantity}}}


def return_allowance(t: str, rid: str, user: str, quantity: int) -> dict:
    return {"Update": {"Key": allowance_key(t, rid, user), "UpdateExpression": "ADD taken :neg",
                       "ExpressionAttributeValues": {":neg": -quantity}}}


# --- a bundle's parts (rewards.bundles): the last actions of its transactions ---
PART_ACTIONS = 1  # per part: its stock shard, which also carries its reward's version


def part_actions(t: str, parts: list[dict], into: str) -> list[dict]:
    return [take_stock(t, p["reward_id"], p["shard"], p["quantity"], limited=p["limited"], into=into,
                       version=p["version"]) for p in parts]


def parts_returned(t: str, parts: list[dict], out_of: str) -> list[dict]:
    return [return_stock(t, p["reward_id"], p["shard"], p["quantity"], limited=p["limited"], out_of=out_of)
            for p in parts]


# --- reservations ---
def reserve(t: str, reservation: dict[str, Any], *, reward_version: int, limited: bool,
            per_user_limit: int | None) -> None:
    """Positions: 0 reservation (exists), 1 stock shard (stock, or the reward's version moved), 2 allowance;
    a bundle's parts last. `reservation` carries its `sweep_partition`."""
    r = reservation
    order = f"{r['created_at']}#{r['reservation_id']}"
    actions = [
        {"Put": {"Item": {**reservation_key(t, r["reservation_id"]),
                          "gsi1pk": reservations_partition(t, r["reward_id"], r["shard"]), "gsi1sk": order,
                          "gsi2pk": user_reservations_partition(t, r["reward_id"], r["user_id"]), "gsi2sk": order,
                          **_present(r)},
                 "ConditionExpression": "attribute_not_exists(pk)"}},
        take_stock(t, r["reward_id"], r["shard"], r["quantity"], limited=limited, into="reserved",
                   version=reward_version),
    ]
    if per_user_limit is not None:
        actions.append(take_allowance(t, r["reward_id"], r["user_id"], r["quantity"], per_user_limit))
    pointer = {**sweep_key(t, r), "scope": t, **{k: r[k] for k in RELEASE_FIELDS if k in r}}
    actions.append({"Put": {"Item": pointer}})
    transact(actions + part_actions(t, r.get("parts", []), into="reserved"))


def get_reservation(t: str, res_id: str) -> dict | None:
    return strip(_get(reservation_key(t, res_id)))


def _set_reservation(t: str, r: dict, to: str, now: str, condition: str, extra: dict | None = None) -> dict:
    return {"Update": {"Key": reservation_key(t, r["reservation_id"]),
                       "UpdateExpression": "SET #s = :to, updated_at = :now",
                       "ConditionExpression": condition, "ExpressionAttributeNames": {"#s": "status"},
                       "ExpressionAttributeValues": {":to": to, ":now": now, **(extra or {})}}}


def confirm(t: str, r: dict, now: str) -> None:
    """PENDING and not expired → CONFIRMED; reserved moves to issued; the expiry pointer goes."""
    transact([
        _set_reservation(t, r, "CONFIRMED", now, "#s = :pending AND expires_at > :now", {":pending": "PENDING"}),
        move_stock(t, r["reward_id"], r["shard"], r["quantity"]),
        {"Delete": {"Key": sweep_key(t, r)}},
        *(move_stock(t, p["reward_id"], p["shard"], p["quantity"]) for p in r.get("parts", [])),
    ])


def release(t: str, r: dict, to: str, now: str, *, only_if_expired: bool = False) -> None:
    transact(release_actions(t, r, to, now, only_if_expired=only_if_expired))


def release_actions(t: str, r: dict, to: str, now: str, *, only_if_expired: bool = False) -> list[dict]:
    """PENDING → CANCELLED or EXPIRED: the quantity returns to stock and to the user's allowance."""
    condition = "#s = :pending" + (" AND expires_at <= :now" if only_if_expired else "")
    actions = [
        _set_reservation(t, r, to, now, condition, {":pending": "PENDING"}),
        return_stock(t, r["reward_id"], r["shard"], r["quantity"], limited=r["limited"], out_of="reserved"),
        {"Delete": {"Key": sweep_key(t, r)}},
    ]
    if r.get("counted"):
        actions.append(return_allowance(t, r["reward_id"], r["user_id"], r["quantity"]))
    return actions + parts_returned(t, r.get("parts", []), out_of="reserved")


def due_reservations(now: str, limit: int = 100) -> list[dict]:
    """Pointers of pending reservations whose expiry has passed, across tenants and apps (the sweeper's work):
    each is the `scope` (tenant and app) and the RELEASE_FIELDS of its reservation, enough for `release`."""
    due = []
    for n in range(sweep_partitions()):
        answer = dynamo.table().query(KeyConditionExpression=Key("pk").eq(f"SWEEP#RES#{n}") & Key("sk").lte(now),
                                      Limit=limit)
        due.extend(strip(i) for i in answer.get("Items", []))
    return due


def list_reservations(t: str, rid: str, user_id: str | None, status: str | None, limit: int,
                      next_token: str | None) -> tuple[list[dict], str | None]:
    """A user's: that user's own index partition. All: the reward's partitions (one per stock shard), merged."""
    if user_id is not None:
        items, token = pagination.query_page(
            dynamo.table(), partition={"gsi2pk": user_reservations_partition(t, rid, user_id)}, index="gsi2",
            limit=limit, next_token=next_token, newest_first=True, filter_expression=_filters(status=status))
    else:
        shards = (_get(reward_key(t, rid), consistent=False) or {}).get("shards", 1)
        items, token = pagination.merged_page(
            dynamo.table(), partitions=[{"gsi1pk": reservations_partition(t, rid, n)} for n in range(int(shards))],
            index="gsi1", limit=limit, next_token=next_token, newest_first=True,
            filter_expression=_filters(status=status))
    return [strip(i) for i in items], token


def _filters(**equal: str | None):
    condition = None
    for name, value in equal.items():
        if value is not None:
            condition = Attr(name).eq(value) if condition is None else condition & Attr(name).eq(value)
    return condition


# --- grants ---
def grant_item(t: str, grant: dict) -> dict:
    order = f"{grant['created_at']}#{grant['grant_id']}"
    return {**grant_key(t, grant["grant_id"]),
            "gsi1pk": grants_partition(t, hash_of(grant["grant_id"]) % GRANT_INDEX_SHARDS), "gsi1sk": order,
            "gsi2pk": user_grants_partition(t, grant["user_id"]), "gsi2sk": order, **_present(grant)}


def put_grant(t: str, grant: dict) -> None:
    try:
        dynamo.table().put_item(Item=grant_item(t, grant), ConditionExpression="attribute_not_exists(pk)")
    except ClientError as exc:
        if dynamo.is_condition_failure(exc):
            raise ConditionFailed from exc
        raise


def issue_grants(t: str, grants: list[dict], *, shard: int, limited: bool, per_user_limit: int | None,
                 reward_version: int) -> None:
    """Grants of one reward issued together, all or nothing (a batch grant's users): each new grant, each
    user's allowance (with a per-user limit), the group's units out of one stock shard into `issued` while
    the reward is still `reward_version` (the shard carries it). Positions: grants 0..n-1, then the
    allowances n..2n-1 (with a limit), the shard last."""
    rid = grants[0]["reward_id"]
    actions = [{"Put": {"Item": grant_item(t, g), "ConditionExpression": "attribute_not_exists(pk)"}} for g in grants]
    if per_user_limit is not None:
        actions += [take_allowance(t, rid, g["user_id"], g.get("quantity", 1), per_user_limit) for g in grants]
    actions.append(take_stock(t, rid, shard, sum(g.get("quantity", 1) for g in grants), limited=limited,
                              into="issued", version=reward_version))
    transact(actions)


def put_new_grants(t: str, grants: list[dict]) -> None:
    """Grants that take nothing (refused ones, FAILED), each only if its id is new; one transaction of up to
    100. ConditionFailed names the positions of the ids that exist."""
    transact([{"Put": {"Item": grant_item(t, g), "ConditionExpression": "attribute_not_exists(pk)"}} for g in grants])


def get_grants(t: str, gids: list[str]) -> list[dict]:
    return [strip(i) for i in batch_get([grant_key(t, g) for g in gids])]


def get_grant(t: str, gid: str) -> dict | None:
    return strip(_get(grant_key(t, gid)))


def set_grant_status(t: str, gid: str, to: str, expected: set[str], now: str, reason: str | None,
                     details: dict | None, fields: dict | None = None, *, outbox: list[dict] | None = None) -> dict:
    """Conditional on the current status being one of `expected` (an empty set never matches); `fields` are
    set too (the validity a generation fixes); with `outbox`, the update and its events in one transaction."""
    if not expected:
        raise ConditionFailed
    expression, names, values = dynamo.update_expression(
        _present({**(fields or {}), "status": to, "updated_at": now, "reason": reason, "details": details or None}))
    allowed = {f":e{i}": status for i, status in enumerate(sorted(expected))}
    update = {"Key": grant_key(t, gid), "UpdateExpression": expression,
              "ExpressionAttributeNames": {**names, "#s": "status"},
              "ExpressionAttributeValues": {**values, **allowed},
              "ConditionExpression": f"attribute_exists(pk) AND #s IN ({', '.join(allowed)})"}
    if outbox:
        transact([{"Update": update}, *outbox])
        return get_grant(t, gid)
    try:
        answer = dynamo.table().update_item(**update, ReturnValues="ALL_NEW")
    except ClientError as exc:
        if dynamo.is_condition_failure(exc):
            raise ConditionFailed from exc
        raise
    return strip(answer["Attributes"])


def rollback(t: str, grant: dict, now: str, returns: list[dict], *, outbox: list[dict]) -> None:
    """The grant → ROLLED_BACK from the status it was seen in, with the stock and allowance actions that give
    back what it took and its event: exactly once, as the grant's condition admits one winner."""
    transact([
        {"Update": {"Key": grant_key(t, grant["grant_id"]), "UpdateExpression": "SET #s = :to, updated_at = :now",
                    "ConditionExpression": "#s = :seen", "ExpressionAttributeNames": {"#s": "status"},
                    "ExpressionAttributeValues": {":to": "ROLLED_BACK", ":now": now, ":seen": grant["status"]}}},
        *returns,
        *outbox,
    ])


def reservation_rolled_back(t: str, r: dict, now: str) -> dict:
    return _set_reservation(t, r, "ROLLED_BACK", now, "#s = :confirmed", {":confirmed": "CONFIRMED"})


def list_user_grants(t: str, user: str, status: str | None, limit: int, next_token: str | None):
    """One user's grants, newest first (the wallet), from that user's own index partition (gsi2)."""
    return list_grants(t, {"user_id": user, "status": status}, limit, next_token)


def get_rewards(t: str, rids: Iterable[str]) -> dict[str, dict]:
    """Rewards by id, deleted ones included (a grant keeps its reward's name)."""
    return {i["reward_id"]: i for i in (strip(i) for i in batch_get([reward_key(t, r) for r in sorted(set(rids))]))}


def get_issued_codes(t: str, gids: Iterable[str]) -> dict[str, str]:
    """The full codes issued to these grants, by grant id."""
    keys = [grant_key(t, g, "CODE") for g in sorted(set(gids))]
    return {i["pk"].rsplit("#", 1)[1]: i["code"] for i in batch_get(keys)} if keys else {}


def get_allowance(t: str, rid: str, user: str) -> int:
    item = _get(allowance_key(t, rid, user), consistent=False) or {}
    return int(item.get("taken", 0))


def list_grants(t: str, filters: dict[str, str | None], limit: int, next_token: str | None):
    """A user's grants: that user's own index partition, so a page (and its token) holds only their keys.
    The tenant's: its GRANT_INDEX_SHARDS partitions, merged newest first."""
    user, others = filters.get("user_id"), {k: v for k, v in filters.items() if k != "user_id"}
    if user is not None:
        items, token = pagination.query_page(
            dynamo.table(), partition={"gsi2pk": user_grants_partition(t, user)}, index="gsi2", limit=limit,
            next_token=next_token, newest_first=True, filter_expression=_filters(**others))
    else:
        items, token = pagination.merged_page(
            dynamo.table(), partitions=[{"gsi1pk": grants_partition(t, n)} for n in range(GRANT_INDEX_SHARDS)],
            index="gsi1", limit=limit, next_token=next_token, newest_first=True,
            filter_expression=_filters(**others))
    return [strip(i) for i in items], token


# --- code key and sequence ---
def allocate_codes(t: str, count: int) -> tuple[bytes, int]:
    """The code key of the tenant's app (made on first use) and the first of `count` fresh sequence numbers: one
    atomic update, so concurrent batches never share a number."""
    answer = dynamo.table().update_item(
        Key={"pk": f"T#{t}#CODES", "sk": "KEY"},
        UpdateExpression="SET secret = if_not_exists(secret, :secret) ADD next_seq :n",
        ExpressionAttributeValues={":secret": secrets.token_bytes(32), ":n": count}, ReturnValues="ALL_NEW")
    item = answer["Attributes"]
    return bytes(item["secret"].value if hasattr(item["secret"], "value") else item["secret"]), \
        int(item["next_seq"]) - count


def code_secret(t: str) -> bytes | None:
    item = _get({"pk": f"T#{t}#CODES", "sk": "KEY"}, consistent=False)
    if not item:
        return None
    secret = item["secret"]
    return bytes(secret.value if hasattr(secret, "value") else secret)


# --- batches and codes ---
def put_batch(t: str, batch: dict) -> None:
    dynamo.table().put_item(Item={
        **batch_key(t, batch["batch_id"]), "gsi1pk": f"T#{t}#REWARD#{batch['reward_id']}#BATCHES",
        "gsi1sk": f"{batch['created_at']}#{batch['batch_id']}", **_present(batch)},
        ConditionExpression="attribute_not_exists(pk)")


def get_batch(t: str, bid: str) -> dict | None:
    return strip(_get(batch_key(t, bid)))


def batches_of_reward(t: str, rid: str) -> list[dict]:
    answer = dynamo.table().query(IndexName="gsi1", KeyConditionExpression=Key("gsi1pk").eq(
        f"T#{t}#REWARD#{rid}#BATCHES"), Limit=100)
    return [strip(i) for i in answer.get("Items", [])]


def code_item(t: str, code: dict) -> dict:
    item = {**code_key(t, code["code"]), **_present(code)}
    if code.get("batch_id"):
        item.update(gsi1pk=f"T#{t}#BATCH#{code['batch_id']}#CODES", gsi1sk=f"{code['seq']:012d}")
    return item


def write_codes(t: str, codes: Iterable[dict]) -> None:
    """BatchWriteItem, 25 codes a request: safe without conditions because codes are unique by construction."""
    with dynamo.table().batch_writer() as writer:
        for code in codes:
            writer.put_item(Item=code_item(t, code))


def finish_chunk(t: str, bid: str, start: int, count: int, total: int) -> None:
    """Count a written chunk once (the batch keeps the set of counted chunks; one conditional update), then
    close the batch when every chunk is in."""
    try:
        counted = dynamo.table().update_item(
            Key=batch_key(t, bid), UpdateExpression="ADD generated :n, chunks :chunk",
            ConditionExpression="NOT contains(chunks, :start)", ReturnValues="UPDATED_NEW",
            ExpressionAttributeValues={":n": count, ":chunk": {str(start)}, ":start": str(start)})
        if int(counted["Attributes"]["generated"]) < total:
            return  # more chunks to come: only the last one closes the batch
    except ClientError as exc:
        if not dynamo.is_condition_failure(exc):
            raise  # else: counted by an earlier delivery of this chunk, which may have died before closing
    try:
        dynamo.table().update_item(
            Key=batch_key(t, bid), UpdateExpression="SET #s = :done", ExpressionAttributeNames={"#s": "status"},
            ConditionExpression="generated = :total AND #s <> :done",
            ExpressionAttributeValues={":done": "DONE", ":total": total})
    except ClientError as exc:
        if not dynamo.is_condition_failure(exc):
            raise


def claim_export(t: str, batch: dict, count: int, export: dict) -> None:
    """Claim codes [claimed, claimed + count) of the batch for one export and record who and when, in one
    conditional update: the condition on `claimed` makes two exports take disjoint ranges, and only the
    generating account exports."""
    try:
        dynamo.table().update_item(
            Key=batch_key(t, batch["batch_id"]),
            UpdateExpression="SET claimed = claimed + :n, exported = exported + :n,"
                             " exports = list_append(if_not_exists(exports, :none), :export)",
            ConditionExpression="claimed = :seen AND created_by = :me AND #s = :done",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":n": count, ":seen": batch["claimed"], ":me": export["exported_by"],
                                       ":done": "DONE", ":none": [], ":export": [_present(export)]})
    except ClientError as exc:
        if dynamo.is_condition_failure(exc):
            raise ConditionFailed from exc
        raise


def claim_one(t: str, bid: str) -> int | None:
    """The offset of one unexported, unassigned code of a finished batch, taken for a grant; None if none."""
    try:
        answer = dynamo.table().update_item(
            Key=batch_key(t, bid), UpdateExpression="ADD claimed :one", ReturnValues="UPDATED_NEW",
            ConditionExpression="#s = :done AND claimed < #total", ExpressionAttributeNames={"#s": "status",
                                                                                          "#total": "total"},
            ExpressionAttributeValues={":one": 1, ":done": "DONE"})
    except ClientError as exc:
        if dynamo.is_condition_failure(exc):
            return None
        raise
    return int(answer["Attributes"]["claimed"]) - 1


def get_code(t: str, code: str) -> dict | None:
    return strip(_get(code_key(t, code)))


def get_code_and_failures(t: str, code: str, user: str, window: int) -> tuple[dict | None, int]:
    """The code and the user's failed redemptions in this window, in one BatchGetItem."""
    found = batch_get([code_key(t, code), guard_key(t, user, window)])
    item = next((i for i in found if i["sk"] == "CODE"), None)
    guard = next((i for i in found if i["sk"] != "CODE"), {})
    return strip(item), int(guard.get("failures", 0))


def count_failure(t: str, user: str, window: int, expires: int) -> int:
    answer = dynamo.table().update_item(
        Key=guard_key(t, user, window), UpdateExpression="ADD failures :one SET #ttl = :ttl",
        ExpressionAttributeNames={"#ttl": "ttl"}, ExpressionAttributeValues={":one": 1, ":ttl": expires},
        ReturnValues="UPDATED_NEW")
    return int(answer["Attributes"]["failures"])


def list_codes(t: str, bid: str, status: str | None, limit: int, next_token: str | None):
    items, token = pagination.query_page(
        dynamo.table(), partition={"gsi1pk": f"T#{t}#BATCH#{bid}#CODES"}, index="gsi1", limit=limit,
        next_token=next_token, filter_expression=_filters(status=status))
    return [strip(i) for i in items], token


def update_code(t: str, code: str, expression: str, condition: str, values: dict,
                outbox: list[dict] | None = None) -> dict:
    """The code after a conditional update; with `outbox`, the update and its events in one transaction."""
    update = {"Key": code_key(t, code), "UpdateExpression": expression, "ConditionExpression": condition,
              "ExpressionAttributeNames": {"#s": "status"}, "ExpressionAttributeValues": values}
    if outbox:
        transact([{"Update": update}, *outbox])
        return get_code(t, code)
    try:
        answer = dynamo.table().update_item(**update, ReturnValues="ALL_NEW")
    except ClientError as exc:
        if dynamo.is_condition_failure(exc):
            raise ConditionFailed from exc
        raise
    return strip(answer["Attributes"])


def _use_code(t: str, code: str, user: str, now: str, grant_id: str) -> dict:
    """The code → USED by `user`, if it is unused, theirs to use and valid now."""
    return {"Update": {"Key": code_key(t, code),
                       "UpdateExpression": "SET #s = :used, used_by = :u, used_at = :now, grant_id = :g",
                       "ConditionExpression": "attribute_exists(pk) AND #s = :unused"
                                              " AND (attribute_not_exists(assigned_to) OR assigned_to = :u)"
                                              " AND (attribute_not_exists(valid_from) OR valid_from <= :now)"
                                              " AND (attribute_not_exists(expire_time) OR expire_time > :now)",
                       "ExpressionAttributeNames": {"#s": "status"},
                       "ExpressionAttributeValues": {":used": "USED", ":unused": "UNUSED", ":u": user, ":now": now,
                                                     ":g": grant_id}}}


def redeem_issued(t: str, code: str, user: str, now: str, grant_id: str, reward_id: str, reward_version: int,
                  shard: int, order: dict, *, outbox: list[dict]) -> None:
    """Redeeming a code a grant issued: that grant (which took the stock and the user's allowance) becomes USED,
    nothing is taken again. Positions: 0 code, 1 a stock shard (the reward's version moved), 2 grant
    (DISTRIBUTED); then the events."""
    fields = _present({"status": "USED", "updated_at": now, **order})
    expression, names, values = dynamo.update_expression(fields)
    transact([
        _use_code(t, code, user, now, grant_id),
        version_unchanged(t, reward_id, shard, reward_version),
        {"Update": {"Key": grant_key(t, grant_id), "UpdateExpression": expression,
                    "ConditionExpression": "#s = :distributed AND user_id = :u",
                    "ExpressionAttributeNames": {**names, "#s": "status"},
                    "ExpressionAttributeValues": {**values, ":distributed": "DISTRIBUTED", ":u": user}}},
        *outbox,
    ])


def redeem(t: str, code: str, user: str, now: str, grant: dict, stock: dict, allowance: dict | None, *,
           outbox: list[dict]) -> None:
    """One transaction. Positions: 0 code, 1 stock (stock, or the reward's version moved), 2 grant,
    3 allowance; then the events; a bundle's parts (the grant's `parts`) last."""
    actions = [
        _use_code(t, code, user, now, grant["grant_id"]),
        stock,
        {"Put": {"Item": grant_item(t, grant), "ConditionExpression": "attribute_not_exists(pk)"}},
    ]
    if allowance:
        actions.append(allowance)
    transact([*actions, *outbox, *part_actions(t, grant.get("parts", []), into="issued")])


def issue_code(t: str, grant_id: str, code: dict, *, fresh: bool) -> None:
    """Bind a code to a grant's user: a fresh code is created, a batch code assigned; the grant's code record
    makes it once per grant. Positions: 0 grant's code record, 1 code."""
    record = {**grant_key(t, grant_id, "CODE"), **_present({"code": code["code"], "batch_id": code.get("batch_id"),
                                                             "valid_until": code.get("expire_time")})}
    if fresh:
        code_action = {"Put": {"Item": code_item(t, code), "ConditionExpression": "attribute_not_exists(pk)"}}
    else:
        code_action = {"Update": {"Key": code_key(t, code["code"]),
                                  "UpdateExpression": "SET assigned_to = :u, issued_grant = :g",
                                  "ConditionExpression": "#s = :unused AND attribute_not_exists(assigned_to)",
                                  "ExpressionAttributeNames": {"#s": "status"},
                                  "ExpressionAttributeValues": {":u": code["assigned_to"], ":g": grant_id,
                                                                ":unused": "UNUSED"}}}
    transact([{"Put": {"Item": record, "ConditionExpression": "attribute_not_exists(pk)"}}, code_action])


def get_issued_code(t: str, grant_id: str) -> dict | None:
    return strip(_get(grant_key(t, grant_id, "CODE")))
